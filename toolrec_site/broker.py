"""The Redis broker transport the Celery worker uses: kombu's, with one crash fixed.

Celery 5.7 / kombu 5.7 (the latest releases): when the worker loses Redis while it holds an
unacknowledged message (a task with a countdown waiting for its time, or a late-acked task
running), the consumer first `collect()`s the broken connection, which detaches kombu's
transport from its connection (`transport.client = None`), and then `close()`s it. Closing
the channel restores the unacknowledged messages, which needs a Redis client, whose
connection parameters are read from `transport.client`: `AttributeError: 'NoneType' object
has no attribute 'hostname'`. The worker treats that as unrecoverable and exits; learning
and index rebuilds stop until someone restarts it (reproduced 2 of 2 with kill -9 of
Redis; tests/recommender/test_broker_restart.py does it under a real worker).

The fix: a channel whose transport is detached raises Redis's ConnectionError instead, one
of the transport's `connection_errors`, which the closing code already ignores; the worker
then reconnects as it does from any other broker outage. Nothing is lost by not restoring
at that point: the unacknowledged message stays in Redis's unacked index, from where kombu
restores it after the visibility timeout (when Redis kept its data), and every task here is
a nudge the periodic tasks repeat anyway (toolrec_site.scheduling).

Selected by `CELERY_BROKER_TRANSPORT` in the settings for `redis://` broker URLs. Remove
it once kombu guards `_connparams` itself.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection was already collected")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
