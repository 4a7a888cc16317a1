"""Creates one DynamoDB table of infra/template.yaml on any DynamoDB endpoint.

Used to give AWS's DynamoDB Local the very table the stack deploys (same keys, indexes and
TTL), so the store's contract tests can run against it too:

    .venv/bin/python tools/localaws/create_table.py --endpoint http://127.0.0.1:8000 \
        --logical-id WarTable --name clanwar-contract
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `localaws` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localaws.cfn_yaml import load_template
from localaws.provisioner import HANDLERS, Provisioner
from localaws.template import Stack

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--logical-id", default="WarTable")
    parser.add_argument("--name", help="table name (default: the template's)")
    parser.add_argument("--template", default=str(ROOT / "infra" / "template.yaml"))
    args = parser.parse_args()

    template_path = Path(args.template)
    stack = Stack(load_template(template_path))
    resource = stack.resources[args.logical_id]
    if resource["Type"] != "AWS::DynamoDB::Table":
        print(f"{args.logical_id} is a {resource['Type']}, not a table", file=sys.stderr)
        return 2
    props = stack.resolve(resource.get("Properties") or {})
    if args.name:
        props["TableName"] = args.name
    # Backups are an operational setting DynamoDB Local does not implement; keys, indexes and
    # TTL — what the contract tests exercise — are kept exactly.
    props.pop("PointInTimeRecoverySpecification", None)
    provisioner = Provisioner(stack, endpoint=args.endpoint, template_dir=template_path.parent)
    physical = HANDLERS["AWS::DynamoDB::Table"](provisioner, args.logical_id, props)
    print(physical.ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
