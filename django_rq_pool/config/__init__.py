"""The pool's configuration: sources, parsing, checks, environment counts and the plan.

Pure data and rules: nothing here forks, signals or talks to Redis.
"""
