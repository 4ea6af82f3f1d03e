"""What runs in each forked worker process: rq's own loop, taught the pool's signals."""
