"""moto's S3 server for tests/object_lock.rs, on a loopback port.

Starts moto in this process with request authentication on (SigV4
signatures and IAM policies are checked), creates two IAM users -- `full`
(every S3 action) and `nodelete` (every S3 action but deletes) -- and two
buckets -- `locked` (Object Lock and versioning on) and `plain` (neither)
-- then prints one JSON line: {"port", "full": [id, secret],
"nodelete": [id, secret]}. It serves until its stdin closes.
"""
import json
import os
import sys

# Every request after the first six is authenticated: those six make the
# two IAM users and their keys (moto has no root key to make them with).
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "6"
os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402


def check_signatures_on_the_raw_query():
    """moto (5.x) checks a signature against the query as werkzeug
    re-encoded it, where `%2F` has become `/`, so every listing with a
    prefix like `parts/` fails SigV4 -- boto3's own too. This checks it
    against the query as the client sent it, which is what AWS does."""
    from moto.core.authorization import ActionAuthenticatorMixin

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authenticate(self, iam_request_cls, resource="*"):
        raw = getattr(self, "raw_uri", None)
        if raw is None:
            return original(self, iam_request_cls, resource)
        uri = self.uri
        self.uri = raw
        try:
            return original(self, iam_request_cls, resource)
        finally:
            self.uri = uri

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate

    from moto.core.responses import BaseResponse

    setup = BaseResponse.setup_class

    def setup_class(self, request, full_url, headers, use_raw_body=False):
        setup(self, request, full_url, headers, use_raw_body)
        environ = getattr(request, "environ", None) or {}
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        self.raw_uri = raw if raw and "?" in raw else None

    BaseResponse.setup_class = setup_class


def main():
    check_signatures_on_the_raw_query()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    root = dict(endpoint_url=endpoint, region_name="us-east-1",
                aws_access_key_id="setup", aws_secret_access_key="setup")
    iam = boto3.client("iam", **root)
    keys = {}
    policies = {
        "full": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        "nodelete": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
             "Resource": "*"},
        ],
    }
    for name, statements in policies.items():
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        keys[name] = [key["AccessKeyId"], key["SecretAccessKey"]]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=keys["full"][0], aws_secret_access_key=keys["full"][1])
    s3.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    s3.create_bucket(Bucket="plain")
    print(json.dumps({"port": port, **keys}), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
