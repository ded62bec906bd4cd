#!/usr/bin/env python3
"""Calls routing like another NAV system would: a real gRPC client (Python grpcio) generated from
the contracts in proto/ at run time. Needs `pip install grpcio grpcio-tools`.

    scripts/call_routing.py [ADDRESS] [--municipality 3403] [--area CONFLICT_HANDLING | --own-expert]
                            [--date 2026-03-02] [--token JWT]

Prints the routed case. With authentication on, pass a bearer token holding the `case-writer` role.
"""
import argparse
import importlib
import pathlib
import sys
import tempfile
import uuid

import grpc
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent


def generated_modules():
    out = tempfile.mkdtemp(prefix="ekb-proto-")
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    protos = sorted(str(p) for p in (ROOT / "proto/ekspertbistand/v1").glob("*.proto"))
    code = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}",
                        f"--python_out={out}", f"--grpc_python_out={out}", *protos])
    if code != 0:
        sys.exit(f"protoc failed with {code}")
    sys.path.insert(0, out)
    load = lambda name: importlib.import_module(f"ekspertbistand.v1.{name}")
    return load("common_pb2"), load("routing_pb2"), load("routing_pb2_grpc")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address", nargs="?", default="127.0.0.1:50051")
    parser.add_argument("--employer", default="974760673")
    parser.add_argument("--municipality", default="3403")
    parser.add_argument("--area", default="CONFLICT_HANDLING")
    parser.add_argument("--own-expert", action="store_true")
    parser.add_argument("--date", default="2026-03-02")
    parser.add_argument("--token")
    args = parser.parse_args()

    common, routing, routing_grpc = generated_modules()
    if args.own_expert:
        choice = common.ExpertChoice(own_expert=common.OwnExpertChoice())
    else:
        area = common.CompetenceArea.Value(f"COMPETENCE_AREA_{args.area}")
        choice = common.ExpertChoice(framework_agreement=common.FrameworkAgreementChoice(competence_area=area))
    request = routing.OpenCaseRequest(
        request_id=str(uuid.uuid4()),
        facts=routing.CaseFacts(employer_organisation_number=args.employer,
                                municipality_number=args.municipality,
                                expert_choice=choice, case_date=args.date))
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else None
    with grpc.insecure_channel(args.address) as channel:
        try:
            response = routing_grpc.RoutingServiceStub(channel).OpenCase(request, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            sys.exit(f"{error.code().name}: {error.details()}")
    case = response.case
    print(f"case {case.case_id} county {case.county_code}: "
          f"{common.Flow.Name(case.decision.flow)} / {common.RoutingReason.Name(case.decision.reason)}")


if __name__ == "__main__":
    main()
