"""The DVC remote that cluster jobs and clones share, and a check of its S3 credentials.

Where the remote comes from, in this order:

- ``AUDIOCLF_DVC_REMOTE`` (a URL such as ``s3://bucket/dvc``) in the environment: it is written
  as the default remote ``cluster`` into the repository's ``.dvc/config.local`` (never the
  committed config), with ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` as its endpoint when
  set (any S3-compatible store: MinIO, SeaweedFS, Ceph...). Credentials stay in the
  environment (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, or ``AWS_PROFILE``): DVC and
  boto3 read them from there, so they are never written to a file.
- else the repository's own default remote (``dvc remote add -d ...``, committed or local).

:func:`check_s3` proves the credentials work before any job spends time training: it writes
and deletes a small object under the remote's prefix, and turns S3's refusals into a message
that names the remote, the endpoint and the variables to fix.

Nothing here runs at import time; dvc and boto3 are imported when used.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

ENV_REMOTE = "AUDIOCLF_DVC_REMOTE"
REMOTE_NAME = "cluster"  # the name given to a remote configured from the environment


class RemoteError(RuntimeError):
    """The DVC remote is missing, unreachable or refuses the credentials; the message says why."""


@dataclass(frozen=True)
class Remote:
    name: str
    url: str
    endpoint: str | None = None  # S3 endpoint URL; None: AWS itself
    # Credentials written in the DVC config (discouraged; the environment is the usual place).
    access_key_id: str | None = None
    secret_access_key: str | None = None
    profile: str | None = None
    region: str | None = None


def env_endpoint() -> str | None:
    """The S3 endpoint from the standard AWS variables, if one is set."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def from_env() -> Remote | None:
    """The remote named by ``AUDIOCLF_DVC_REMOTE`` (and the AWS endpoint variables), if set."""
    url = os.environ.get(ENV_REMOTE)
    if not url:
        return None
    return Remote(REMOTE_NAME, url, env_endpoint() if url.startswith("s3://") else None)


def resolve(repo: Path) -> Remote:
    """The remote a job in ``repo`` would use: the environment's, else the repository's default."""
    from dvc.config import Config, ConfigError

    dvc_dir = Path(repo) / ".dvc"
    if not dvc_dir.is_dir():
        raise RemoteError(f"{repo}: not a DVC repository (no .dvc folder)")
    if (remote := from_env()) is not None:
        return remote
    try:
        config = Config(dvc_dir=str(dvc_dir))
    except ConfigError as err:
        raise RemoteError(f"{dvc_dir}/config: {err}") from err
    name = config["core"].get("remote")
    if not name:
        raise RemoteError(
            f"{repo}: no DVC remote. Set {ENV_REMOTE}=s3://<bucket>/<prefix> (and "
            "AWS_ENDPOINT_URL for a store other than AWS), or commit a default remote with "
            "`dvc remote add -d <name> <url>`"
        )
    section = config["remote"].get(name)
    if section is None:
        raise RemoteError(f"{dvc_dir}/config: core.remote is {name!r} but no such remote is set")
    return Remote(
        name=name,
        url=section["url"],
        endpoint=section.get("endpointurl") or env_endpoint(),
        access_key_id=section.get("access_key_id"),
        secret_access_key=section.get("secret_access_key"),
        profile=section.get("profile"),
        region=section.get("region"),
    )


def configure(repo: Path) -> Remote:
    """:func:`resolve`, and make DVC in ``repo`` use it: an environment's remote is written to
    ``.dvc/config.local`` as the default remote ``cluster``."""
    from dvc.config import Config, ConfigError

    remote = resolve(repo)
    if remote.name == REMOTE_NAME and os.environ.get(ENV_REMOTE):
        section = {"url": remote.url}
        if remote.endpoint:
            section["endpointurl"] = remote.endpoint
        try:
            with Config(dvc_dir=str(Path(repo) / ".dvc")).edit("local") as local:
                local["core"]["remote"] = REMOTE_NAME
                local["remote"][REMOTE_NAME] = section
        except ConfigError as err:
            raise RemoteError(f"{repo}/.dvc/config.local: {err}") from err
    return remote


def check_s3(remote: Remote, timeout_s: float = 20.0) -> str:
    """Write and delete one object under an S3 remote's prefix; a clear RemoteError if refused.

    Returns a one-line description of what was checked ("not S3" for other remotes, which DVC
    itself checks when it first uses them).
    """
    parsed = urlparse(remote.url)
    if parsed.scheme != "s3":
        return f"remote {remote.name} ({remote.url}): not S3, not checked here"
    import boto3
    import botocore.config
    import botocore.exceptions

    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    key = "/".join(filter(None, [prefix, f".audioclf-check-{uuid.uuid4().hex}"]))
    where = f"DVC remote {remote.name!r} ({remote.url}" + (
        f" at {remote.endpoint})" if remote.endpoint else ")"
    )
    session = boto3.session.Session(profile_name=remote.profile) if remote.profile else boto3
    client = session.client(
        "s3",
        endpoint_url=remote.endpoint,
        aws_access_key_id=remote.access_key_id,
        aws_secret_access_key=remote.secret_access_key,
        region_name=remote.region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=botocore.config.Config(
            connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 2}
        ),
    )
    fix = (
        "Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the job's "
        "environment; they must be the S3 store's keys for this bucket"
    )
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"audioclf credential check\n")
        client.delete_object(Bucket=bucket, Key=key)
    except botocore.exceptions.NoCredentialsError as err:
        raise RemoteError(f"{where}: no S3 credentials found. {fix}") from err
    except botocore.exceptions.EndpointConnectionError as err:
        raise RemoteError(
            f"{where}: cannot reach the S3 endpoint ({err}). Check AWS_ENDPOINT_URL and that "
            "the store is up and reachable from this machine"
        ) from err
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "?")
        message = err.response.get("Error", {}).get("Message", str(err))
        if code == "NoSuchBucket":
            raise RemoteError(
                f"{where}: bucket {bucket!r} does not exist. Create it, or fix {ENV_REMOTE}"
            ) from err
        refused = f"{where}: S3 refused the credentials ({code}: {message}). {fix}"
        raise RemoteError(refused) from err
    return f"{where}: credentials accepted (wrote and deleted {key})"
