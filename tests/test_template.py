"""template.yaml as CloudFormation receives it (SAM's transform, run offline): every
way into the ingest function is capped, and the hygiene a security review asks for."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from samtranslator.translator.transform import transform

from cflogs.invoke import read_template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = read_template(ROOT / "template.yaml")
FUNCTIONS = (
    "IngestFunction",
    "StitchFunction",
    "BackfillFunction",
    "RealtimeFunction",
    "DashboardFunction",
)


class _NoManagedPolicies:
    def load(self) -> dict:
        return {}


def cloudformation(template: dict) -> dict:
    """SAM's transform of the template, with local code locations replaced (SAM only
    accepts S3 ones) and without AWS calls."""
    template = copy.deepcopy(template)
    for resource in template["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://bucket/key"
    return transform(template, {}, _NoManagedPolicies())


@pytest.fixture(scope="module")
def resources() -> dict:
    return cloudformation(TEMPLATE)["Resources"]  # conftest sets AWS_DEFAULT_REGION


def mentions(value, name: str) -> bool:
    """Whether a Ref or GetAtt anywhere in value points at resource name."""
    text = json.dumps(value)
    return any(
        f'"{form}": {target}' in text
        for form in ("Ref", "Fn::GetAtt")
        for target in (f'"{name}"', f'"{name}.Arn"', f'["{name}", "Arn"]')
    )


def uncapped_paths(resources: dict, function: str = "IngestFunction") -> list[str]:
    """Every way the function could be invoked other than its queue's capped event
    source mapping: permissions for other services, event rules, S3 notifications
    straight to Lambda, async invoke configs, invoke grants in IAM policies."""
    problems = []
    queues = set()
    for name, resource in resources.items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if name == function or not mentions(props, function):
            continue
        if kind == "AWS::Lambda::EventSourceMapping":
            limit = props.get("ScalingConfig", {}).get("MaximumConcurrency")
            if limit != {"Ref": "IngestMaxConcurrency"}:
                problems.append(f"{name}: event source without MaximumConcurrency")
            queues.add(props["EventSourceArn"]["Fn::GetAtt"].split(".")[0])
        elif kind == "AWS::CloudWatch::Alarm":
            continue
        else:
            problems.append(f"{name} ({kind}) reaches {function}")
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        notifications = props.get("NotificationConfiguration", {})
        if notifications.get("LambdaConfigurations"):
            problems.append(f"{name}: S3 notifications invoke Lambda directly")
        for target in notifications.get("QueueConfigurations", []):
            if target["Queue"]["Fn::GetAtt"].split(".")[0] not in queues:
                problems.append(f"{name}: S3 notifications to a queue the function does not read")
        if resource["Type"] == "AWS::IAM::Role":
            for statement in statements(props):
                target = statement.get("Resource")
                if "lambda:Invoke" in json.dumps(statement["Action"]) and (
                    mentions(target, function) or "-backfill" not in json.dumps(target)
                ):
                    problems.append(f"{name}: may invoke {target}")
    if not queues:
        problems.append(f"no capped event source for {function}")
    return problems


def statements(props: dict) -> list[dict]:
    """The statements of a role's inline policies (both arms of any Fn::If)."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            if "Effect" in value and "Action" in value:
                found.append(value)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(props.get("Policies", props.get("PolicyDocument", [])))
    return found


def test_every_path_into_ingest_is_capped(resources):
    assert uncapped_paths(resources) == []
    # the backfill and the redrive send to the same queue
    backfill = resources["BackfillFunction"]["Properties"]["Environment"]["Variables"]
    assert backfill["INGEST_QUEUE_URL"] == {"Ref": "IngestQueue"}
    assert "EventInvokeConfig" not in TEMPLATE["Resources"]["IngestFunction"]["Properties"]


def test_the_check_finds_a_direct_s3_invoke():
    """The template before the queue: S3 invoked the function itself."""
    template = copy.deepcopy(TEMPLATE)
    template["Resources"]["IngestS3Permission"] = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": "IngestFunction.Arn"},
            "Principal": "s3.amazonaws.com",
        },
    }
    notifications = template["Resources"]["LogBucket"]["Properties"]["NotificationConfiguration"]
    notifications["LambdaConfigurations"] = [
        {"Event": "s3:ObjectCreated:*", "Function": {"Fn::GetAtt": "IngestFunction.Arn"}}
    ]
    problems = uncapped_paths(cloudformation(template)["Resources"])
    assert any("IngestS3Permission" in p for p in problems)
    assert any("directly" in p for p in problems)


def test_the_check_finds_an_uncapped_queue_or_a_schedule():
    template = copy.deepcopy(TEMPLATE)
    events = template["Resources"]["IngestFunction"]["Properties"]["Events"]
    del events["Queue"]["Properties"]["ScalingConfig"]
    events["Hourly"] = {"Type": "Schedule", "Properties": {"Schedule": "rate(1 hour)"}}
    problems = uncapped_paths(cloudformation(template)["Resources"])
    assert any("without MaximumConcurrency" in p for p in problems)
    assert any("AWS::Events::Rule" in p for p in problems)


def test_visibility_timeout_is_six_times_the_function_timeout():
    timeouts = TEMPLATE["Parameters"]["IngestTimeout"]["AllowedValues"]
    mapping = TEMPLATE["Mappings"]["IngestTimeouts"]
    assert sorted(mapping, key=int) == [str(t) for t in timeouts]
    for timeout in timeouts:
        assert mapping[str(timeout)]["VisibilityTimeout"] == 6 * timeout
    queue = TEMPLATE["Resources"]["IngestQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == {
        "Fn::FindInMap": ["IngestTimeouts", {"Ref": "IngestTimeout"}, "VisibilityTimeout"]
    }
    function = TEMPLATE["Resources"]["IngestFunction"]["Properties"]
    assert function["Timeout"] == {"Ref": "IngestTimeout"}


def test_allowed_statements_name_their_resources(resources):
    """No Allow with a '*' action or resource, except X-Ray's, which takes no resource
    names; no managed policy but the VPC one (network interfaces), when in a VPC."""
    roles = [name for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"]
    assert sorted(roles) == [
        "BackfillRole",
        "DashboardRole",
        "IngestRole",
        "RealtimeRole",
        "StitchRole",
    ]
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        for statement in statements(props):
            if statement["Effect"] != "Allow":
                continue
            actions = statement["Action"]
            actions = actions if isinstance(actions, list) else [actions]
            for action in actions:
                assert action != "*" and not action.endswith(":*"), (name, action)
            if all(action.startswith("xray:") for action in actions):
                continue
            targets = statement.get("Resource", [])
            for target in targets if isinstance(targets, list) else [targets]:
                text = json.dumps(target)
                assert target != "*" and '"*"' not in text and ":*/" not in text, (name, text)
        if resource["Type"] == "AWS::IAM::Role":
            (managed,) = props["ManagedPolicyArns"]
            assert managed["Fn::If"][0] == "InVpc", name
            assert "AWSLambdaVPCAccessExecutionRole" in json.dumps(managed["Fn::If"][1])
    assert TEMPLATE["Parameters"]["DbResourceId"]["Default"] == ""


def test_each_function_has_its_own_role(resources):
    for function in FUNCTIONS:
        role = resources[function]["Properties"]["Role"]
        assert role == {"Fn::GetAtt": f"{function.replace('Function', 'Role')}.Arn"}


def test_queues_are_encrypted_and_the_bucket_locked_down(resources):
    queues = [r for r in resources.values() if r["Type"] == "AWS::SQS::Queue"]
    assert len(queues) == 4  # ingest, its dead letters, backfill and real-time failures
    assert all(q["Properties"]["SqsManagedSseEnabled"] is True for q in queues)
    bucket = resources["LogBucket"]["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    policy = resources["LogBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in policy if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_functions_log_json_to_groups_with_retention(resources):
    for function in FUNCTIONS:
        logging = resources[function]["Properties"]["LoggingConfig"]
        assert logging["LogFormat"] == "JSON"
        group = resources[logging["LogGroup"]["Ref"]]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_alarms_cover_errors_throttles_dead_letters_and_the_stitch_backlog(resources):
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {(a["MetricName"], json.dumps(a["Dimensions"][0]["Value"])) for a in alarms}
    for function in FUNCTIONS:
        assert ("Errors", json.dumps({"Ref": function})) in watched
    for function in ("IngestFunction", "StitchFunction"):
        assert ("Throttles", json.dumps({"Ref": function})) in watched
    for queue in ("IngestDeadLetterQueue", "BackfillFailureQueue"):
        value = json.dumps({"Fn::GetAtt": f"{queue}.QueueName"})
        assert ("ApproximateNumberOfMessagesVisible", value) in watched
    assert ("BacklogAgeSeconds", '"cflogs"') in watched


# ------------------------------------------------------------ guided deploy


def test_every_parameter_is_described_labelled_and_grouped():
    parameters = TEMPLATE["Parameters"]
    interface = TEMPLATE["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [name for group in interface["ParameterGroups"] for name in group["Parameters"]]
    assert sorted(grouped) == sorted(parameters)
    assert set(interface["ParameterLabels"]) == set(parameters)
    for name, parameter in parameters.items():
        assert parameter.get("Description"), name
        if parameter.get("Default") in ("true", "false"):
            assert parameter["AllowedValues"] == ["true", "false"], name


def evaluate(expression, values: dict):
    """The few rule functions the template uses, over parameter values."""
    if isinstance(expression, str):
        return expression
    ((function, argument),) = expression.items()
    if function == "Ref":
        return values.get(argument, TEMPLATE["Parameters"][argument].get("Default"))
    arguments = [evaluate(a, values) for a in argument]
    return {
        "Fn::Equals": lambda: str(arguments[0]) == str(arguments[1]),
        "Fn::Not": lambda: not arguments[0],
        "Fn::Or": lambda: any(arguments),
        "Fn::And": lambda: all(arguments),
    }[function]()


def refused(values: dict) -> list[str]:
    """The assertions of the template's rules that these parameter values fail."""
    failed = []
    for rule in TEMPLATE["Rules"].values():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"], values):
            continue
        for assertion in rule["Assertions"]:
            if not evaluate(assertion["Assert"], values):
                failed.append(assertion["AssertDescription"])
    return failed


def test_rules_refuse_a_stack_without_database_settings():
    assert refused({"LogBucketName": "logs"})
    secret = "arn:aws:secretsmanager:us-east-1:111122223333:secret:cflogs-db-AbCdEf"
    assert refused({"DbSecretArn": secret}) == []
    iam = {"DbIamAuth": "true", "DbHost": "db.example.internal", "DbUser": "cflogs"}
    assert refused(iam) == [
        "IAM authentication needs DbResourceId (rds-db:connect is granted on it)."
    ]
    assert refused({**iam, "DbResourceId": "db-ABCDEFGHIJKL"}) == []


def test_outputs_name_what_an_operator_needs():
    outputs = TEMPLATE["Outputs"]
    values = [json.dumps(o["Value"]) for o in outputs.values()]
    for queue in ("IngestQueue", "IngestDeadLetterQueue", "BackfillFailureQueue"):
        assert json.dumps({"Ref": queue}) in values
    assert json.dumps({"Fn::GetAtt": "IngestDeadLetterQueue.Arn"}) in values
    for function in FUNCTIONS:
        assert json.dumps({"Ref": function}) in values
    assert json.dumps({"Ref": "LogBucketName"}) in values
    assert all(o.get("Description") for o in outputs.values())
