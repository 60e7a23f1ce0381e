"""The AWS emulation of the local stack: a moto server on loopback with durable state.

Start-up order matters: provision the resources, put the stored objects and items back (no S3
events fire), connect S3 -> SQS, then re-enqueue only the uploads that lack an up-to-date record.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import moto.backends
from cheroot import wsgi
from moto.backends import get_backend
from moto.core.utils import unix_time, unix_time_millis
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.s3.utils import cors_matches_origin
from moto.server import DomainDispatcherApplication, create_backend_app
from moto.sqs.models import Message, Queue, SQSBackend

from image_etl.local.cognito import CognitoCors, UserPersistence, UserStore, patch_moto_cognito
from image_etl.local.persistence import PersistenceMiddleware, StateStore, restore, restore_glue
from image_etl.local.provision import connect_notifications, create_identity, create_resources
from image_etl.local.s3_disk import BlobStore, install, uninstall
from image_etl.resource_shapes import LOCAL, StackNames
from image_etl.settings import (
    DEFAULT_SITE_PORT,
    LOCAL_ACCOUNT_ID,
    LOCAL_HOST,
    OBJECTS_DIR,
    STATE_DB,
    Settings,
    local_settings,
)
from image_etl.users import ensure_demo_user
from lambda_resizer.records import image_id_for

USERS_FILE = "users.json"
#: moto settings of the local user pool: ids derived from the pool's definition (so they, and the
#: tokens naming them, survive a restart) and TOTP codes really checked.
COGNITO_ENVIRONMENT = {
    "MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY": "HASH",
    "MOTO_COGNITO_IDP_USER_POOL_CLIENT_ID_STRATEGY": "HASH",
    "MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP": "true",
}


@dataclass(frozen=True)
class StartupReport:
    restored_objects: int
    restored_items: int
    requeued: int
    seconds: float
    restored_users: int
    user_pool_id: str
    user_pool_client_id: str


class FormUploadCors:
    """Answer browser form uploads (POST to a bucket) with the bucket's CORS headers, as S3 does.

    moto applies a bucket's CORS rules to most object requests but not to presigned POST uploads,
    so without this the upload page could not read the result of its own upload.
    """

    def __init__(self, app: Any, s3: Any) -> None:
        self.app = app
        self.s3 = s3

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        origin = environ.get("HTTP_ORIGIN", "")
        bucket = environ.get("PATH_INFO", "").strip("/")
        if (
            environ["REQUEST_METHOD"] != "POST"
            or not origin
            or "/" in bucket
            or bucket not in self.s3.buckets
        ):
            return self.app(environ, start_response)
        allowed = [
            rule
            for rule in self.s3.buckets[bucket].cors
            if cors_matches_origin(origin, rule.allowed_origins or [])
            and "POST" in (rule.allowed_methods or [])
        ]

        def with_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if allowed and not any(name.lower() == "access-control-allow-origin" for name, _ in headers):
                headers = [*headers, ("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
                if allowed[0].exposed_headers:
                    headers.append(("Access-Control-Expose-Headers", ", ".join(allowed[0].exposed_headers)))
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, with_cors)


def _retention_check(backend: SQSBackend, queue_name: str, message: Message) -> bool:
    """Return whether ``message`` is inside its queue's retention period (moto's check, made O(1))."""
    queue = backend.get_queue(queue_name)
    # moto sets both when the queue is created and the message queued; its hints do not say so.
    retention = int(queue.message_retention_period)  # type: ignore[attr-defined]
    return retention + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]


def _ready(queue: Queue) -> list[Message]:
    now = unix_time_millis()
    return [m for m in queue._messages if now > m.visible_at and not now < m.delayed_until]


def _count_delayed(queue: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in queue._messages if now < m.delayed_until)


def _count_in_flight(queue: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in queue._messages if not now > m.visible_at)


def speed_up_sqs() -> None:
    """Make moto's SQS cost the same per message whatever the backlog, with the same answers.

    moto 5 builds all of a queue's attributes for every message sent (to read one flag) and three
    times for every message received (to read the retention period), and each build counts the
    queue's messages three times, asking the clock twice per message. With 1,000 uploads queued
    the emulator's core was saturated by that alone and the stack drained ~6 images/s. Here the
    retention period is read directly and each count reads the clock once.
    """
    SQSBackend.is_message_valid_based_on_retention_period = _retention_check  # type: ignore[method-assign,assignment]
    Queue.messages = property(_ready)  # type: ignore[method-assign,assignment]
    Queue.approximate_number_of_messages_delayed = property(_count_delayed)  # type: ignore[method-assign,assignment]
    Queue.approximate_number_of_messages_not_visible = property(_count_in_flight)  # type: ignore[method-assign,assignment]


_MOTO_MODULES = tuple(moto.backends.list_of_moto_modules())


def speed_up_dispatch() -> None:
    """Resolve each request's service without listing moto's package folder every time.

    moto's dispatcher asks `list_of_moto_modules()` (a directory listing and ~150 `isdir` calls)
    on every request, and then tries each service's URL patterns in turn: a quarter of the
    emulator's CPU while the stack drains uploads. The modules do not change while it runs, and a
    host always maps to the same service, so both answers are remembered.
    """
    moto.backends.list_of_moto_modules = lambda: _MOTO_MODULES
    original = DomainDispatcherApplication.get_backend_for_host
    if getattr(original, "remembers", False):
        return
    answers: dict[str | None, Any] = {}

    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        if host not in answers:
            answers[host] = original(self, host)
        return answers[host]

    get_backend_for_host.remembers = True  # type: ignore[attr-defined]
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


#: The emulator's request threads (see `Emulator`): every long poll holds one for up to 20 s.
SERVER_THREADS = 32


class Emulator:
    """moto behind the persistence middleware, served by a threaded WSGI server on 127.0.0.1."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        site_port: int = DEFAULT_SITE_PORT,
        names: StackNames = LOCAL,
        region: str = "us-east-1",
    ) -> None:
        self.data_dir = data_dir
        self.names = names
        self.region = region
        self.blobs = BlobStore(data_dir / OBJECTS_DIR)
        install(self.blobs)
        self.store = StateStore(data_dir / STATE_DB, self.blobs)
        speed_up_sqs()
        speed_up_dispatch()
        os.environ.update(COGNITO_ENVIRONMENT)
        patch_moto_cognito()
        app = DomainDispatcherApplication(create_backend_app)
        self._s3 = get_backend("s3")[LOCAL_ACCOUNT_ID]["aws"]
        self._dynamodb = get_backend("dynamodb")[LOCAL_ACCOUNT_ID][region]
        self._cognito = get_backend("cognito-idp")[LOCAL_ACCOUNT_ID][region]
        self._glue = get_backend("glue")[LOCAL_ACCOUNT_ID][region]
        self.users = UserStore(data_dir / USERS_FILE)
        uploads = FormUploadCors(
            PersistenceMiddleware(app, self.store, s3=self._s3, dynamodb=self._dynamodb, glue=self._glue),
            self._s3,
        )
        middleware = CognitoCors(
            UserPersistence(uploads, self.users, self._cognito),
            allowed_origin=f"http://{LOCAL_HOST}:{site_port}",
        )
        # cheroot keeps connections alive: werkzeug's development server closes every connection
        # and starts a thread per request, which cost the emulator about a third of its CPU per
        # request. Threads are a fixed pool: long polls (20 s ReceiveMessage from each worker and
        # the sensor) each hold one, so there are plenty.
        self._server = wsgi.Server(
            (LOCAL_HOST, port), middleware, numthreads=SERVER_THREADS, server_name=LOCAL_HOST
        )
        self._server.prepare()  # binds: raises OSError (EADDRINUSE) right here when the port is taken
        self.port = int(self._server.bind_addr[1])
        self.settings: Settings = local_settings(
            data_dir, aws_port=self.port, site_port=site_port, region=region, names=names
        )
        self._thread = threading.Thread(target=self._server.serve, name="moto", daemon=True)

    def start(self) -> StartupReport:
        """Serve, provision, restore, connect events, re-enqueue unprocessed uploads; return what was done."""
        began = time.perf_counter()
        # The catalog first: provisioning creates the Glue database, and that write would otherwise
        # be recorded over the stored catalog before it is read.
        restore_glue(self._glue, self.store.glue())
        self._thread.start()
        create_resources(self.settings, self.names)
        pool_id, client_id = create_identity(self.settings, self.names.identity)
        users = self.users.restore(self._cognito)
        self.settings = replace(self.settings, user_pool_id=pool_id, user_pool_client_id=client_id)
        ensure_demo_user(self.settings, self.data_dir, identity=self.names.identity)
        objects, items = restore(
            self.store,
            s3=self._s3,
            dynamodb=self._dynamodb,
            account_id=LOCAL_ACCOUNT_ID,
            region=self.region,
        )
        connect_notifications(self.settings)
        requeued = self.reconcile()
        return StartupReport(objects, items, requeued, time.perf_counter() - began, users, pool_id, client_id)

    def reconcile(self) -> int:
        """Re-enqueue the uploads without an up-to-date record (see `reconcile`); return how many."""
        return reconcile(self.settings, s3=self._s3, dynamodb=self._dynamodb)

    def stop(self) -> None:
        self._server.stop()
        self._thread.join(timeout=10)
        self.store.close()
        uninstall()


def reconcile(settings: Settings, *, s3: Any, dynamodb: Any) -> int:
    """Enqueue an S3 event for every upload whose record is missing or older than the object.

    SQS messages do not survive a restart; this finds the work they carried by comparing the upload
    prefix with the records, and enqueues nothing else. It reads moto's backends directly (``s3``
    and ``dynamodb``): over HTTP the same comparison cost a listing page per 1,000 uploads and a
    BatchGetItem per 100, which made a restart grow with the dataset.

    :return: the number of uploads enqueued.
    """
    bucket = s3.buckets[settings.upload_bucket]
    table = dynamodb.get_table(settings.table_name)
    pending: list[Any] = []
    for name in list(bucket.keys):
        if not name.startswith(settings.upload_prefix):
            continue
        fake = bucket.keys.get(name)
        if fake is None:
            continue
        item = table.get_item(DynamoType({"S": image_id_for(settings.upload_bucket, name)}))
        recorded = item.attrs.get("source_etag") if item is not None else None
        if recorded is None or recorded.value != fake.etag.strip('"'):
            pending.append(fake)
    sqs = settings.client("sqs")
    for start in range(0, len(pending), 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps(_s3_event(settings, fake))}
            for i, fake in enumerate(pending[start : start + 10])
        ]
        sqs.send_message_batch(QueueUrl=settings.queue_url, Entries=entries)
    return len(pending)


def _s3_event(settings: Settings, fake: Any) -> dict[str, Any]:
    """Return an S3 ObjectCreated notification for one of moto's keys, as S3 itself would send it."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": settings.region,
                "eventTime": fake.last_modified.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "reconcile",
                    "bucket": {
                        "name": settings.upload_bucket,
                        "arn": f"arn:aws:s3:::{settings.upload_bucket}",
                    },
                    "object": {
                        "key": quote_plus(fake.name),
                        "size": fake.size,
                        "eTag": fake.etag.strip('"'),
                    },
                },
            }
        ]
    }


def main(argv: list[str] | None = None) -> None:
    """Run the emulator in the foreground until SIGTERM/SIGINT; print one JSON line when ready."""
    parser = argparse.ArgumentParser(description="image-etl local AWS emulation (moto + durable state)")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--site-port", type=int, default=DEFAULT_SITE_PORT)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the stack's output
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        emulator = Emulator(args.data_dir, port=args.port, site_port=args.site_port)
    except OSError as error:
        print(
            json.dumps({"error": f"cannot listen on {LOCAL_HOST}:{args.port}: {error.strerror}"}), flush=True
        )
        sys.exit(2)
    report = emulator.start()
    print(json.dumps({"ready": True, "port": emulator.port, **report.__dict__}), flush=True)
    stop.wait()
    emulator.stop()


if __name__ == "__main__":
    main()
