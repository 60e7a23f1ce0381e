"""ImageProcessingStack: uploads reach the resize function through SQS, and nothing else does."""

from __future__ import annotations

import subprocess
from importlib.metadata import version

import pytest

from image_etl import stack_outputs
from image_etl.resource_shapes import LOCAL, NOTIFICATION_EVENTS, UPLOAD_PREFIX
from infra.bundling import RESIZER_PLATFORM, RESIZER_REQUIREMENTS
from tests.infra.conftest import Cloud

pytestmark = pytest.mark.slow


def test_uploads_notify_the_queue_only_under_the_upload_prefix(cloud: Cloud) -> None:
    stack = cloud.processing
    (notification,) = cloud.resources(stack, "Custom::S3BucketNotifications").values()
    props = notification["Properties"]
    assert props["BucketName"] == {"Ref": cloud.logical_id(stack.upload_bucket)}
    assert props["NotificationConfiguration"] == {
        "QueueConfigurations": [
            {
                "Events": list(NOTIFICATION_EVENTS),
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": UPLOAD_PREFIX}]}},
                "QueueArn": {"Fn::GetAtt": [cloud.logical_id(stack.queue.queue), "Arn"]},
            }
        ]
    }


def test_queue_redrives_to_the_dlq_and_outlasts_the_function(cloud: Cloud) -> None:
    stack, shape = cloud.processing, LOCAL.queue
    cloud.template(stack).has_resource_properties(
        "AWS::SQS::Queue",
        {
            "VisibilityTimeout": 6 * LOCAL.function.timeout_s,
            "MessageRetentionPeriod": shape.retention_s,
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": [cloud.logical_id(stack.queue.dead_letters), "Arn"]},
                "maxReceiveCount": shape.max_receive_count,
            },
        },
    )
    dlq = cloud.resources(stack, "AWS::SQS::Queue")[cloud.logical_id(stack.queue.dead_letters)]
    assert dlq["Properties"]["MessageRetentionPeriod"] == shape.dlq_retention_s
    assert "RedrivePolicy" not in dlq["Properties"]


def test_large_tier_has_its_own_queue_dlq_function_and_only_the_standard_tier_sends_to_it(
    cloud: Cloud,
) -> None:
    stack, shape = cloud.processing, LOCAL.large_queue
    assert shape is not None
    queues = cloud.resources(stack, "AWS::SQS::Queue")
    queue = queues[cloud.logical_id(stack.large_queue.queue)]["Properties"]
    assert queue["VisibilityTimeout"] == 6 * LOCAL.large_function.timeout_s
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [cloud.logical_id(stack.large_queue.dead_letters), "Arn"]},
        "maxReceiveCount": shape.max_receive_count,
    }
    function = cloud.resources(stack, "AWS::Lambda::Function")[cloud.logical_id(stack.large_resizer.function)]
    props = function["Properties"]
    assert (props["MemorySize"], props["Timeout"]) == (LOCAL.large_function.memory_mb, 300)
    assert props["MemorySize"] > LOCAL.function.memory_mb
    assert props["Handler"] == "lambda_resizer.handler.lambda_handler"
    assert props["Environment"]["Variables"]["RESIZER_TIER"] == "large"
    assert "LARGE_QUEUE_URL" not in props["Environment"]["Variables"]
    standard = cloud.resources(stack, "AWS::Lambda::Function")[cloud.logical_id(stack.resizer.function)]
    env = standard["Properties"]["Environment"]["Variables"]
    assert env["LARGE_QUEUE_URL"] == {"Ref": cloud.logical_id(stack.large_queue.queue)}
    assert env["LARGE_MEMORY_MB"] == str(LOCAL.large_function.memory_mb)
    cloud.template(stack).has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [cloud.logical_id(stack.large_queue.queue), "Arn"]},
            "FunctionName": {"Ref": cloud.logical_id(stack.large_resizer.function)},
            "BatchSize": shape.batch_size,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )
    senders = [
        policy["Properties"]["Roles"]
        for policy in cloud.resources(stack, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "sqs:SendMessage" in statement["Action"]
        and statement["Resource"] == {"Fn::GetAtt": [cloud.logical_id(stack.large_queue.queue), "Arn"]}
    ]
    role = cloud.logical_id(stack.resizer.function.role)
    assert senders == [[{"Ref": role}]]


def test_function_reads_the_queue_with_partial_batch_responses(cloud: Cloud) -> None:
    stack = cloud.processing
    cloud.template(stack).resource_properties_count_is("AWS::Lambda::EventSourceMapping", {}, 2)
    cloud.template(stack).has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [cloud.logical_id(stack.queue.queue), "Arn"]},
            "FunctionName": {"Ref": cloud.logical_id(stack.resizer.function)},
            "BatchSize": LOCAL.queue.batch_size,
            "MaximumBatchingWindowInSeconds": LOCAL.queue.max_batching_window_s,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )


def test_table_is_on_demand_recoverable_and_outlives_the_stack(cloud: Cloud) -> None:
    (table,) = cloud.resources(cloud.processing, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    # Deleting the stack keeps the image records (README: "kept when a stack is deleted").
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    # Keys and indexes: tests/infra/test_parity.py holds them to the table `image-etl up` creates.


def test_resize_function_runs_on_x86_64_with_the_handlers_environment(cloud: Cloud) -> None:
    stack = cloud.processing
    function = cloud.resources(stack, "AWS::Lambda::Function")[cloud.logical_id(stack.resizer.function)]
    props = function["Properties"]
    assert props["Runtime"] == "python3.12"
    # x86_64: the SIMD resampler's Linux wheels exist for it only (infra/bundling.py, README).
    assert props["Architectures"] == ["x86_64"]
    assert props["Handler"] == "lambda_resizer.handler.lambda_handler"
    assert props["Timeout"] == LOCAL.function.timeout_s
    assert props["MemorySize"] == LOCAL.function.memory_mb
    assert props["Layers"] == [{"Ref": cloud.logical_id(stack.resizer.layer)}]
    # Its environment's values: tests/infra/test_parity.py holds them to the local worker's. Here:
    # the resources it names are this stack's.
    env = props["Environment"]["Variables"]
    assert {name: env[name] for name in ("VARIANTS_BUCKET", "TABLE_NAME", "LARGE_QUEUE_URL")} == {
        "VARIANTS_BUCKET": {"Ref": cloud.logical_id(stack.variants_bucket)},
        "TABLE_NAME": {"Ref": cloud.logical_id(stack.table)},
        "LARGE_QUEUE_URL": {"Ref": cloud.logical_id(stack.large_queue.queue)},
    }


def test_layer_holds_pillow_and_the_simd_resampler_built_for_x86_64_and_python_312(cloud: Cloud) -> None:
    stack = cloud.processing
    layer = cloud.resources(stack, "AWS::Lambda::LayerVersion")[cloud.logical_id(stack.resizer.layer)]
    assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    site = cloud.asset_dir(layer["Properties"]["Content"]["S3Key"]) / "python"
    suffix = RESIZER_PLATFORM.extension_suffix
    assert (site / "PIL" / f"_imaging.{suffix}.so").is_file()
    assert (site / "cykooz_resizer" / f"rust_lib.{suffix}.so").is_file()
    assert (site / f"_pillow_heif.{suffix}.so").is_file()
    assert list((site / "numpy" / "_core").glob(f"_multiarray_umath.{suffix}.so"))
    assert (site / "aws_lambda_powertools").is_dir()
    # Every compiled module is built for the function's Python and CPU (or the stable ABI): a
    # module copied from this machine's own environment would not load there.
    foreign = [
        path.name
        for path in site.rglob("*.so")
        if "cpython-" in path.name and f".{suffix}.so" not in path.name
    ]
    assert foreign == []
    pins = dict(
        line.split("==")
        for line in RESIZER_REQUIREMENTS.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert (site / f"pillow-{pins['pillow']}.dist-info").is_dir()
    # The Pillow the resize tests run against is the one deployed.
    assert pins["pillow"] == version("pillow")


def test_function_code_is_the_handler_package_alone(cloud: Cloud) -> None:
    stack = cloud.processing
    function = cloud.resources(stack, "AWS::Lambda::Function")[cloud.logical_id(stack.resizer.function)]
    code = cloud.asset_dir(function["Properties"]["Code"]["S3Key"])
    assert sorted(path.name for path in code.iterdir()) == ["lambda_resizer"]
    assert (code / "lambda_resizer" / "handler.py").is_file()
    assert not list(code.rglob("__pycache__"))


#: What each C decoder may take from the C library: Lambda's (Amazon Linux) glibc is older than this
#: machine's, so only symbols of versions every x86_64 glibc since 2.17 has.
_LIBC_ALLOWED = {
    "_jpeg_scaled_ac.so": set(),
    "_webp_lossless_rows.so": {"malloc", "calloc", "free", "memcpy", "memset"},
}


def test_function_code_carries_the_c_decoders_built_for_x86_64_with_only_old_libc_symbols(
    cloud: Cloud,
) -> None:
    # formats/jpeg_scaled.py and formats/webp_lossless.py load them; compiled into the asset by
    # infra/bundling.py, never copied from the checkout.
    function = cloud.resources(cloud.processing, "AWS::Lambda::Function")[
        cloud.logical_id(cloud.processing.resizer.function)
    ]
    code = cloud.asset_dir(function["Properties"]["Code"]["S3Key"])
    assert sorted(p.name for p in code.rglob("*.so")) == sorted(_LIBC_ALLOWED)
    for name, allowed in _LIBC_ALLOWED.items():
        built = code / "lambda_resizer" / "formats" / name
        assert built.read_bytes()[:4] == b"\x7fELF"
        assert built.read_bytes()[18:20] == (62).to_bytes(2, "little")  # e_machine: EM_X86_64
        symbols = subprocess.run(
            ["nm", "-D", "--undefined-only", str(built)], capture_output=True, text=True, check=True
        )
        strong = [line.split()[-1] for line in symbols.stdout.splitlines() if line.split()[0] == "U"]
        names = {symbol.split("@")[0] for symbol in strong}
        assert names <= allowed, (name, strong)
        versions = [tuple(map(int, s.split("@GLIBC_")[1].split("."))) for s in strong]
        assert all(version <= (2, 17) for version in versions), (name, strong)


def test_alarms_fire_on_any_dead_letter_and_any_function_error(cloud: Cloud) -> None:
    stack = cloud.processing
    template = cloud.template(stack)
    common = {"Threshold": 0, "ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1}
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            **common,
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [
                {
                    "Name": "QueueName",
                    "Value": {"Fn::GetAtt": [cloud.logical_id(stack.queue.dead_letters), "QueueName"]},
                }
            ],
        },
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            **common,
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [
                {"Name": "FunctionName", "Value": {"Ref": cloud.logical_id(stack.resizer.function)}}
            ],
        },
    )


def test_function_and_access_logs_are_kept_a_month(cloud: Cloud) -> None:
    stack = cloud.processing
    log_group = cloud.logical_id(stack.resizer.log_group)
    assert cloud.resources(stack, "AWS::Logs::LogGroup")[log_group]["Properties"]["RetentionInDays"] == 30
    # ... and so are the S3 server access logs, in the bucket the other buckets log to.
    buckets = cloud.resources(stack, "AWS::S3::Bucket")
    (log_bucket,) = {
        bucket["Properties"]["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
        for bucket in buckets.values()
        if "LoggingConfiguration" in bucket["Properties"]
    }
    rules = buckets[log_bucket]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert [rule.get("ExpirationInDays") for rule in rules] == [30]
    function = cloud.resources(stack, "AWS::Lambda::Function")[cloud.logical_id(stack.resizer.function)]
    assert function["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": log_group}}


def test_variants_and_datasets_buckets_never_trigger_anything(cloud: Cloud) -> None:
    stack = cloud.processing
    notified = [
        resource["Properties"]["BucketName"]
        for resource in cloud.resources(stack, "Custom::S3BucketNotifications").values()
    ]
    assert notified == [{"Ref": cloud.logical_id(stack.upload_bucket)}]
    datasets = cloud.resources(stack, "AWS::S3::Bucket")[cloud.logical_id(stack.datasets_bucket)]
    assert datasets["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}


def test_outputs_name_every_resource_a_client_needs(cloud: Cloud) -> None:
    stack = cloud.processing
    found = cloud.template_json(stack)["Outputs"]
    assert found[stack_outputs.UPLOAD_BUCKET]["Value"] == {"Ref": cloud.logical_id(stack.upload_bucket)}
    assert found[stack_outputs.DATASETS_BUCKET]["Value"] == {"Ref": cloud.logical_id(stack.datasets_bucket)}
    assert found[stack_outputs.TABLE_NAME]["Value"] == {"Ref": cloud.logical_id(stack.table)}
    assert found[stack_outputs.QUEUE_URL]["Value"] == {"Ref": cloud.logical_id(stack.queue.queue)}
    assert found[stack_outputs.DLQ_URL]["Value"] == {"Ref": cloud.logical_id(stack.queue.dead_letters)}
    assert found[stack_outputs.UPLOAD_PREFIX]["Value"] == UPLOAD_PREFIX
    assert "Export" not in found[stack_outputs.UPLOAD_BUCKET]
