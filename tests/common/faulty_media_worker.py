#!/usr/bin/env python3
"""A media worker that misbehaves on one operation, for tests of how the
server lives with a worker that crashes or hangs (tests/media_worker.rs).

    faulty_media_worker.py MODE OPERATION RECOUNT [ARGS...]

Every request goes to the real worker (`RECOUNT ARGS...`, the server's own
`recount media-worker ...`) and its answer comes back, except a request for
OPERATION: with MODE `crash` this process then ends itself with SIGSEGV,
as a decoder crash would; with `hang` it never answers.
"""
import json
import os
import signal
import subprocess
import sys
import time

mode, operation, *real = sys.argv[1:]
worker = subprocess.Popen(real, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
for line in sys.stdin:
    if json.loads(line)["operation"]["operation"] == operation:
        if mode == "crash":
            worker.kill()
            os.kill(os.getpid(), signal.SIGSEGV)
        while True:
            time.sleep(3600)
    worker.stdin.write(line)
    worker.stdin.flush()
    sys.stdout.write(worker.stdout.readline())
    sys.stdout.flush()
