#!/usr/bin/env python3
"""Checks an in-toto statement carrying SLSA build provenance v1 (JSON on
stdin) against the in-toto project's own definitions (PyPI
`in-toto-attestation`, installed by scripts/tools): the predicate must parse
strictly into its `Provenance` protobuf message (no unknown field, every
field of its type), the fields the SLSA v1 spec requires must be set, every
resolved dependency must be a valid ResourceDescriptor, and a v1 statement
must pass the package's own Statement validation. Prints `ok`, or the
first problem on stderr with exit status 1."""
import json
import sys

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"


def fail(why):
    print(f"slsa-check: {why}", file=sys.stderr)
    sys.exit(1)


def main():
    document = json.load(sys.stdin)
    if document.get("predicateType") != PREDICATE_TYPE:
        fail(f"predicateType is {document.get('predicateType')!r}, not {PREDICATE_TYPE}")
    if document.get("_type") == "https://in-toto.io/Statement/v1":
        try:
            proto = json_format.ParseDict(document, statement_pb2.Statement())
            Statement.copy_from_pb(proto).validate()
        except Exception as e:  # noqa: BLE001 - any failure is the answer
            fail(f"the statement: {e}")
    try:
        provenance = json_format.ParseDict(document["predicate"], provenance_pb2.Provenance())
    except Exception as e:  # noqa: BLE001
        fail(f"the predicate does not parse as SLSA Provenance v1: {e}")
    definition = provenance.build_definition
    if not definition.build_type:
        fail("buildDefinition.buildType is required")
    if not definition.HasField("external_parameters"):
        fail("buildDefinition.externalParameters is required")
    if not provenance.run_details.builder.id:
        fail("runDetails.builder.id is required")
    for i, dependency in enumerate(definition.resolved_dependencies):
        try:
            ResourceDescriptor.copy_from_pb(dependency).validate()
        except Exception as e:  # noqa: BLE001
            fail(f"resolvedDependencies[{i}]: {e}")
    print("ok")


main()
