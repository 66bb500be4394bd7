"""End-to-end tests of the test Hub server, driven by the real huggingface_hub client.

huggingface_hub reads HF_ENDPOINT at import, so every client runs in its own process (`run_client`), with a fresh
HF_HOME: a download that succeeded can therefore only have come from the server, never from a shared cache.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from .hub_server import HubServer

ALICE, BOB = "hf_alice_secret_token", "hf_bob_secret_token"
USERS = {"alice": ALICE, "bob": BOB}

CLIENT_PRELUDE = '''
import json, os, sys
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
args = json.loads(sys.argv[1])
api = HfApi()

def error_of(call, *a, **kw):
    """(exception class, HTTP status) raised by a call that should fail, or None if it succeeded."""
    try:
        call(*a, **kw)
    except Exception as e:
        return [type(e).__name__, getattr(getattr(e, "response", None), "status_code", None)]
    return None
'''


def run_client(hub: HubServer, token: str | None, code: str, **args: Any) -> Any:
    """Run `code` in a fresh interpreter whose huggingface_hub talks to `hub` as `token`; return its `result`."""
    script = CLIENT_PRELUDE + textwrap.dedent(code) + "\nprint('RESULT=' + json.dumps(result))\n"
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(args)],
        env=hub.env(token),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"client failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.splitlines()[-1].removeprefix("RESULT="))


def raw_request(
    conn: http.client.HTTPConnection, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on a kept-alive connection, for protocol details the client hides."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hub-data"), USERS) as server:
        yield server


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small text file (sent inline) and an 11 MB weights file (over the 10 MB threshold: sent through LFS)."""
    folder = tmp_path_factory.mktemp("model")
    (folder / "config.json").write_text('{"hidden_size": 8}\n')
    (folder / "weights").mkdir()
    (folder / "weights" / "model.safetensors").write_bytes(hashlib.sha256(b"seed").digest() * (11 * 2**15))
    return folder


@pytest.fixture(scope="module")
def pushed(hub: HubServer, model_folder: Path) -> str:
    """alice/tiny, public, holding `model_folder` on main; returns that commit id. Tests must not move main."""
    code = """
        api.create_repo("alice/tiny")
        result = api.upload_folder(repo_id="alice/tiny", folder_path=args["folder"]).oid
    """
    return run_client(hub, ALICE, code, folder=str(model_folder))


def test_upload_folder_then_snapshot_download_round_trip(hub: HubServer, pushed: str, model_folder: Path) -> None:
    code = """
        tree = api.list_repo_tree("alice/tiny", recursive=True)
        result = {
            "snapshot": snapshot_download("alice/tiny"),
            "single": hf_hub_download("alice/tiny", "config.json"),
            "info": [api.model_info("alice/tiny").sha, api.model_info("alice/tiny").private],
            "files": api.list_repo_files("alice/tiny"),
            "lfs": {f.path: f.lfs is not None for f in tree if hasattr(f, "blob_id")},
            "top_level": sorted(f.path for f in api.list_repo_tree("alice/tiny")),
            "exists": [api.file_exists("alice/tiny", "config.json"), api.file_exists("alice/tiny", "nope.txt")],
        }
    """
    result = run_client(hub, None, code)  # anonymous: public repos are readable without a token
    snapshot = Path(result["snapshot"])
    assert snapshot.name == pushed
    for name in ("config.json", "weights/model.safetensors"):
        assert (snapshot / name).read_bytes() == (model_folder / name).read_bytes()
    assert Path(result["single"]).read_bytes() == (model_folder / "config.json").read_bytes()
    assert result["info"] == [pushed, False]
    assert result["files"] == ["config.json", "weights/model.safetensors"]
    assert result["lfs"] == {"config.json": False, "weights/model.safetensors": True}
    assert result["top_level"] == ["config.json", "weights"]
    assert result["exists"] == [True, False]


def test_identical_repush_keeps_sha_and_a_change_makes_a_new_commit(
    hub: HubServer, model_folder: Path, tmp_path: Path
) -> None:
    folder = shutil.copytree(model_folder, tmp_path / "model")
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# tiny\n")  # the client validates its YAML first
    code = """
        url = str(api.create_repo("alice/repush"))
        first = api.upload_folder(repo_id="alice/repush", folder_path=args["folder"]).oid
        again = api.upload_folder(repo_id="alice/repush", folder_path=args["folder"]).oid
        sha_after_again = api.model_info("alice/repush").sha
        with open(os.path.join(args["folder"], "config.json"), "w") as f:
            f.write('{"hidden_size": 16}\\n')
        changed = api.upload_folder(repo_id="alice/repush", folder_path=args["folder"]).oid
        result = {
            "url": url,
            "exist_ok": str(api.create_repo("alice/repush", exist_ok=True)),
            "conflict": error_of(api.create_repo, "alice/repush"),
            "shas": [first, again, sha_after_again, changed, api.model_info("alice/repush").sha],
            "history": [c.commit_id for c in api.list_repo_commits("alice/repush")],
            "old": open(hf_hub_download("alice/repush", "config.json", revision=first)).read(),
            "new": open(hf_hub_download("alice/repush", "config.json")).read(),
        }
    """
    result = run_client(hub, ALICE, code, folder=str(folder))
    assert result["url"] == result["exist_ok"] == f"{hub.url}/alice/repush"
    assert result["conflict"] == ["HfHubHTTPError", 409]
    first, again, sha_after_again, changed, head = result["shas"]
    assert first == again == sha_after_again
    assert changed == head != first
    assert result["history"][:2] == [changed, first] and len(result["history"]) == 3  # plus the initial commit
    assert (result["old"], result["new"]) == ('{"hidden_size": 8}\n', '{"hidden_size": 16}\n')


def test_preupload_reports_current_oids_and_unchanged_commits_are_not_made(
    hub: HubServer, pushed: str, model_folder: Path
) -> None:
    """The client skips files whose preupload `oid` matches its own (git blob id, or sha256 for LFS files); and
    a commit that changes nothing must not become a new commit on the server either."""
    config = (model_folder / "config.json").read_bytes()
    weights = (model_folder / "weights" / "model.safetensors").read_bytes()
    weights_ref = {"algo": "sha256", "oid": hashlib.sha256(weights).hexdigest(), "size": len(weights)}
    conn = http.client.HTTPConnection(urlsplit(hub.url).netloc, timeout=30)

    files = [{"path": p, "size": n, "sample": ""} for p, n in [("config.json", len(config)), ("new.txt", 3)]]
    files.append({"path": "weights/model.safetensors", "size": len(weights), "sample": ""})
    status, _, body = raw_request(conn, "POST", "/api/models/alice/tiny/preupload/main", {"files": files}, ALICE)
    answers = {f["path"]: (f["uploadMode"], f["oid"]) for f in json.loads(body)["files"]}
    git_oid = hashlib.sha1(b"blob %d\0" % len(config) + config).hexdigest()
    assert (status, answers) == (
        200,
        {
            "config.json": ("regular", git_oid),
            "new.txt": ("regular", None),
            "weights/model.safetensors": ("lfs", weights_ref["oid"]),
        },
    )

    config_b64 = base64.b64encode(config).decode()
    lines = [
        {"key": "header", "value": {"summary": "same again", "description": ""}},
        {"key": "file", "value": {"path": "config.json", "encoding": "base64", "content": config_b64}},
        {"key": "lfsFile", "value": {"path": "weights/model.safetensors", **weights_ref}},
    ]
    ndjson = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    status, _, body = raw_request(conn, "POST", "/api/models/alice/tiny/commit/main", ndjson, ALICE)
    assert (status, json.loads(body)["commitOid"]) == (200, pushed)
    never_uploaded = ndjson.replace(weights_ref["oid"].encode(), b"0" * 64)
    status, _, _ = raw_request(conn, "POST", "/api/models/alice/tiny/commit/main", never_uploaded, ALICE)
    assert status == 422
    status, _, body = raw_request(conn, "GET", "/api/models/alice/tiny")
    assert (status, json.loads(body)["sha"]) == (200, pushed)


def test_signed_chunked_lfs_upload_and_keep_alive_after_errors(hub: HubServer, pushed: str) -> None:
    """LFS PUTs carry no token (the URL is signed) and may be chunked; rejected bodies must not poison keep-alive."""
    data = b"chunked upload " * 70_000
    oid = hashlib.sha256(data).hexdigest()
    conn = http.client.HTTPConnection(urlsplit(hub.url).netloc, timeout=30)
    batch = {"operation": "upload", "objects": [{"oid": oid, "size": len(data)}], "hash_algo": "sha256"}
    status, _, body = raw_request(conn, "POST", "/alice/tiny.git/info/lfs/objects/batch", batch, BOB)
    assert status == 403  # bob cannot write to alice's repo
    status, _, body = raw_request(conn, "POST", "/alice/tiny.git/info/lfs/objects/batch", batch, ALICE)
    href = urlsplit(json.loads(body)["objects"][0]["actions"]["upload"]["href"])
    sock = conn.sock

    def chunks() -> Iterator[bytes]:
        yield from (data[i : i + 65536] for i in range(0, len(data), 65536))

    conn.request("PUT", f"{href.path}?{href.query.replace('sig=', 'sig=0')}", body=chunks(), encode_chunked=True)
    response = conn.getresponse()
    assert (response.status, response.getheader("Connection")) == (403, None)
    response.read()
    status, _, _ = raw_request(conn, "POST", "/api/models/alice/tiny/commit/main", b'{"key": "header"}\n' * 1000)
    assert status == 401  # anonymous write; its body was drained
    status, _, body = raw_request(conn, "GET", "/api/whoami-v2", token=ALICE)
    assert (status, json.loads(body)["name"], conn.sock) == (200, "alice", sock)  # same connection throughout
    status, _, _ = raw_request(conn, "GET", "/api/whoami-v2", token="hf_wrong")
    assert status == 401

    conn.request("PUT", f"{href.path}?{href.query}", body=chunks(), encode_chunked=True)
    assert conn.getresponse().read() == b""
    status, _, body = raw_request(conn, "POST", "/alice/tiny.git/info/lfs/objects/batch", batch, ALICE)
    assert status == 200 and "actions" not in json.loads(body)["objects"][0]  # stored: nothing left to upload


def test_branches_by_name_and_by_commit(hub: HubServer, pushed: str) -> None:
    code = """
        api.create_branch("alice/tiny", branch="dev")
        dev = api.upload_file(
            path_or_fileobj=b"dev only\\n", path_in_repo="notes/dev.txt", repo_id="alice/tiny", revision="dev"
        ).oid
        result = {
            "dev": dev,
            "refs": {b.name: b.target_commit for b in api.list_repo_refs("alice/tiny").branches},
            "duplicate": error_of(api.create_branch, "alice/tiny", branch="dev"),
            "dev_history": [c.commit_id for c in api.list_repo_commits("alice/tiny", revision="dev")],
        }
    """
    pushed_to_dev = run_client(hub, ALICE, code)
    dev = pushed_to_dev["dev"]
    assert pushed_to_dev["refs"] == {"main": pushed, "dev": dev} and dev != pushed
    assert pushed_to_dev["duplicate"] == ["HfHubHTTPError", 409]
    assert pushed_to_dev["dev_history"][:2] == [dev, pushed]

    code = """
        result = {
            "by_branch": open(hf_hub_download("alice/tiny", "notes/dev.txt", revision="dev")).read(),
            "by_commit": open(hf_hub_download("alice/tiny", "notes/dev.txt", revision=args["dev"])).read(),
            "snapshot": sorted(
                os.path.relpath(os.path.join(d, f), p)
                for p in [snapshot_download("alice/tiny", revision="dev")]
                for d, _, files in os.walk(p)
                for f in files
            ),
            "dev_sha": api.model_info("alice/tiny", revision="dev").sha,
            "main_files": api.list_repo_files("alice/tiny"),
            "not_on_main": error_of(hf_hub_download, "alice/tiny", "notes/dev.txt"),
        }
    """
    result = run_client(hub, BOB, code, dev=dev)
    assert result["by_branch"] == result["by_commit"] == "dev only\n"
    assert result["snapshot"] == ["config.json", "notes/dev.txt", "weights/model.safetensors"]
    assert result["dev_sha"] == dev
    assert result["main_files"] == ["config.json", "weights/model.safetensors"]
    assert result["not_on_main"] == ["RemoteEntryNotFoundError", 404]


def test_missing_file_and_unknown_revision_raise_typed_errors(hub: HubServer, pushed: str) -> None:
    code = """
        result = {
            "missing_file": error_of(hf_hub_download, "alice/tiny", "nope.bin"),
            "download_bad_rev": error_of(hf_hub_download, "alice/tiny", "config.json", revision="no-such-branch"),
            "snapshot_bad_rev": error_of(snapshot_download, "alice/tiny", revision="no-such-branch"),
            "info_bad_sha": error_of(api.model_info, "alice/tiny", revision="0" * 40),
            "missing_repo": error_of(api.model_info, "alice/no-such-repo"),
        }
    """
    result = run_client(hub, ALICE, code)
    assert result.pop("missing_file") == ["RemoteEntryNotFoundError", 404]
    assert result.pop("missing_repo") == ["RepositoryNotFoundError", 404]
    assert result == dict.fromkeys(result, ["RevisionNotFoundError", 404])


def test_private_repo_is_hidden_from_other_users_and_anonymous(hub: HubServer) -> None:
    code = """
        api.create_repo("alice/secret", private=True)
        api.upload_file(path_or_fileobj=b"top secret\\n", path_in_repo="secret.txt", repo_id="alice/secret")
        result = [api.model_info("alice/secret").private, open(hf_hub_download("alice/secret", "secret.txt")).read()]
    """
    assert run_client(hub, ALICE, code) == [True, "top secret\n"]
    code = """
        result = {
            "info": error_of(api.model_info, "alice/secret"),
            "download": error_of(hf_hub_download, "alice/secret", "secret.txt"),
            "snapshot": error_of(snapshot_download, "alice/secret"),
            "files": error_of(api.list_repo_files, "alice/secret"),
            "write": error_of(api.upload_file, path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/secret"),
            "exists": [api.repo_exists("alice/secret"), api.file_exists("alice/secret", "secret.txt")],
        }
    """
    for token, status in ((BOB, 404), (None, 401)):  # the Hub answers 401 to anonymous, 404 to other users
        result = run_client(hub, token, code)
        assert result.pop("exists") == [False, False]
        assert result == dict.fromkeys(result, ["RepositoryNotFoundError", status]), token


def test_auth_wrong_token_anonymous_write_and_other_namespace(hub: HubServer, pushed: str) -> None:
    code = """
        wrong, anonymous = HfApi(token="hf_wrong_token"), HfApi(token=False)
        result = {
            "whoami": api.whoami()["name"],
            "wrong_token": [
                error_of(wrong.whoami),
                error_of(wrong.model_info, "alice/tiny"),
                error_of(wrong.create_repo, "alice/by-wrong-token"),
            ],
            "anonymous_create": error_of(anonymous.create_repo, "bob/anonymous"),
            "anonymous_upload": error_of(
                anonymous.upload_file, path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/tiny"
            ),
            "other_namespace": [
                error_of(api.create_repo, "alice/by-bob"),
                error_of(api.upload_file, path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/tiny"),
                error_of(api.create_branch, "alice/tiny", branch="bobs"),
                error_of(api.delete_repo, "alice/tiny"),
            ],
            "sha": api.model_info("alice/tiny").sha,
        }
    """
    result = run_client(hub, BOB, code)
    assert result["whoami"] == "bob"
    assert result["wrong_token"] == [["HfHubHTTPError", 401]] * 3
    assert result["anonymous_create"][1] == result["anonymous_upload"][1] == 401
    assert result["other_namespace"] == [["HfHubHTTPError", 403]] * 4
    assert result["sha"] == pushed  # nothing got through


def test_restart_on_the_same_data_dir_keeps_everything(tmp_path: Path, model_folder: Path) -> None:
    data_dir = tmp_path / "hub-data"
    with HubServer(data_dir, USERS) as hub:
        code = """
            api.create_repo("alice/kept")
            main = api.upload_folder(repo_id="alice/kept", folder_path=args["folder"]).oid
            api.create_branch("alice/kept", branch="dev")
            api.create_repo("alice/hidden", private=True)
            api.upload_file(path_or_fileobj=b"hidden\\n", path_in_repo="h.txt", repo_id="alice/hidden")
            result = main
        """
        main = run_client(hub, ALICE, code, folder=str(model_folder))
    with HubServer(data_dir, USERS) as hub:
        code = """
            result = {
                "snapshot": snapshot_download("alice/kept"),
                "refs": sorted(b.name for b in api.list_repo_refs("alice/kept").branches),
                "hidden": error_of(api.model_info, "alice/hidden"),
            }
        """
        result = run_client(hub, None, code)
        snapshot = Path(result["snapshot"])
        assert snapshot.name == main
        for name in ("config.json", "weights/model.safetensors"):
            assert (snapshot / name).read_bytes() == (model_folder / name).read_bytes()
        assert result["refs"] == ["dev", "main"]
        assert result["hidden"] == ["RepositoryNotFoundError", 401]
        code = """
            new = api.upload_file(path_or_fileobj=b"\\0after restart", path_in_repo="w.bin", repo_id="alice/kept").oid
            result = [open(hf_hub_download("alice/hidden", "h.txt")).read(), new, api.list_repo_files("alice/kept")]
        """
        hidden, new, files = run_client(hub, ALICE, code)
        assert (hidden, files) == ("hidden\n", ["config.json", "w.bin", "weights/model.safetensors"])
        assert new != main


def test_dataset_repo_with_paths_info_and_load_dataset(hub: HubServer) -> None:
    """Dataset repos live under /datasets/ and /api/datasets/; `datasets` lists them through HfFileSystem."""
    code = """
        import datasets
        api.create_repo("alice/reviews", repo_type="dataset", private=True)
        splits = {"train": "good,1\\nbad,0\\nfine,1\\n", "test": "meh,0\\n"}
        for split, rows in splits.items():
            csv, path = ("text,label\\n" + rows).encode(), f"data/{split}.csv"
            api.upload_file(path_or_fileobj=csv, path_in_repo=path, repo_id="alice/reviews", repo_type="dataset")
        infos = api.get_paths_info("alice/reviews", ["data", "data/test.csv", "nope"], repo_type="dataset")
        loaded = datasets.load_dataset("alice/reviews")
        result = {
            "paths_info": [type(info).__name__ for info in infos],
            "rows": {split: list(loaded[split]["text"]) for split in loaded},
            "model_side": error_of(api.model_info, "alice/reviews"),
        }
    """
    result = run_client(hub, ALICE, code)
    assert result["paths_info"] == ["RepoFolder", "RepoFile"]
    assert result["rows"] == {"train": ["good", "bad", "fine"], "test": ["meh"]}
    assert result["model_side"] == ["RepositoryNotFoundError", 404]  # same name, other repo type
