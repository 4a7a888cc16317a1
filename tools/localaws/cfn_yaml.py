"""YAML loader for CloudFormation / SAM templates.

Turns the short-form tags (!Ref, !Sub, !GetAtt, !If, ...) into their long JSON form
({"Ref": ...}, {"Fn::Sub": ...}, ...) so the rest of the tooling only deals with one shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Short tag -> long key. !GetAtt and !Ref are special-cased below.
_FN_TAGS = (
    "And", "Base64", "Cidr", "Equals", "FindInMap", "GetAZs", "If", "ImportValue",
    "Join", "Not", "Or", "Select", "Split", "Sub", "Transform", "Length", "ToJsonString",
)


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that knows CloudFormation tags and keeps dates as plain strings."""


# CloudFormation treats `AWSTemplateFormatVersion: 2010-09-09` as a string, YAML as a date.
CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_any(loader: yaml.Loader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _fn_constructor(name: str):
    def construct(loader: yaml.Loader, node: yaml.Node) -> dict:
        return {f"Fn::{name}": _construct_any(loader, node)}

    return construct


def _construct_ref(loader: yaml.Loader, node: yaml.Node) -> dict:
    return {"Ref": loader.construct_scalar(node)}


def _construct_condition(loader: yaml.Loader, node: yaml.Node) -> dict:
    return {"Condition": loader.construct_scalar(node)}


def _construct_getatt(loader: yaml.Loader, node: yaml.Node) -> dict:
    value = _construct_any(loader, node)
    if isinstance(value, str):
        # !GetAtt Resource.Attr.With.Dots -> ["Resource", "Attr.With.Dots"]
        logical_id, _, attribute = value.partition(".")
        value = [logical_id, attribute]
    return {"Fn::GetAtt": value}


for _name in _FN_TAGS:
    CfnLoader.add_constructor(f"!{_name}", _fn_constructor(_name))
CfnLoader.add_constructor("!Ref", _construct_ref)
CfnLoader.add_constructor("!Condition", _construct_condition)
CfnLoader.add_constructor("!GetAtt", _construct_getatt)


def load_template(path: str | Path) -> dict:
    """Load a CloudFormation/SAM template (YAML or JSON) into its long (JSON) form."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=CfnLoader)
    if not isinstance(data, dict) or "Resources" not in data:
        raise ValueError(f"{path}: not a CloudFormation template (no Resources section)")
    return data
