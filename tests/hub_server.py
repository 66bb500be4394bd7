"""A small Hugging Face Hub-protocol HTTP server for tests (standard library only).

Why it exists: no installable server accepts pushes from huggingface_hub 2.x, and tests must never reach the real Hub.
It implements exactly the endpoints the real client uses (repos, commits with inline and LFS files, branches, tree
listings, downloads), with users and tokens, private repos and all state on disk, so pushes and pulls run end to end.

    python tests/hub_server.py --data-dir DIR [--port 0] [--users alice:TOKEN_A,bob:TOKEN_B]

The first line on stdout is the server URL. huggingface_hub reads its settings at import, so clients must run in a
process whose environment already points at the server: use `HubServer.env`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub's own rule: big files go through LFS
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".npy", ".npz", ".png", ".jpg", ".zip")
TYPE_BY_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
SHA1_RE = re.compile(r"[0-9a-f]{40}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
# The client treats a 401 carrying exactly this message as "bad token", not as "repo not found".
INVALID_TOKEN = "Invalid credentials in Authorization header"
# Environment variables that would make a client process use another cache or identity than the one `env` sets up.
CLIENT_ENV_TO_DROP = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_STORED_TOKENS_PATH",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_XET_CACHE",
    "HF_ASSETS_CACHE",
    "HF_DATASETS_CACHE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
)


class HubError(Exception):
    """An HTTP error shaped like the Hub's: huggingface_hub picks its exception class from `X-Error-Code`."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = dict(headers or {})
        self.extra = extra  # more JSON fields, e.g. `url` in the 409 that `create_repo(exist_ok=True)` reads


def now_iso() -> str:
    """Timestamps in the Hub's format, which huggingface_hub's `parse_datetime` expects."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    """Git's blob id: the client compares it with its own to skip unchanged regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def file_entry(sha256: str, size: int, lfs: bool, data: bytes | None = None) -> dict[str, Any]:
    """One tree entry. An LFS file's git oid is that of its pointer file, as in a real git-lfs repo."""
    oid = git_blob_oid(lfs_pointer(sha256, size)) if lfs else git_blob_oid(data or b"")
    return {"sha256": sha256, "size": size, "oid": oid, "lfs": lfs}


def check_path(path: str) -> str:
    """Paths inside a repo: relative, no `..`; anything else is refused rather than written to disk."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


class Store:
    """All state on disk under one directory, so a restarted server with the same directory keeps everything.

    Layout: `blobs/ab/<sha256>` (file contents, shared by all repos), `commits/<id>.json` (immutable: parents, full
    tree, message), `repos/<type>/<ns>/<name>.json` (owner, visibility, branches, known commits) and `secret` (signs
    upload URLs). Every write is a temp file plus `os.replace`, so killing the server never leaves half-written files.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("blobs", "commits", "repos", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        secret = root / "secret"
        if not secret.exists():
            self._write(secret, secrets.token_hex(32).encode())
        self.secret = secret.read_bytes()
        self.lock = threading.Lock()  # serialises read-modify-write of repo files

    def _write(self, path: Path, data: bytes) -> None:
        tmp = self.root / "tmp" / secrets.token_hex(8)
        tmp.write_bytes(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)

    def _repo_file(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / repo_type / f"{repo_id}.json"

    def load_repo(self, repo_type: str, repo_id: str) -> dict[str, Any] | None:
        path = self._repo_file(repo_type, repo_id)
        return json.loads(path.read_text()) if path.exists() else None

    def save_repo(self, repo: dict[str, Any]) -> None:
        self._write(self._repo_file(repo["type"], repo["id"]), json.dumps(repo, indent=1).encode())

    def delete_repo(self, repo: dict[str, Any]) -> None:
        self._repo_file(repo["type"], repo["id"]).unlink()

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def put_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.blob_path(sha256).exists():
            self._write(self.blob_path(sha256), data)
        return sha256

    def put_stream(self, chunks: Iterable[bytes], expected_sha256: str, expected_size: int) -> bool:
        """Store an uploaded LFS object, hashing while writing; keep it only if it matches what was announced."""
        tmp, digest, size = self.root / "tmp" / secrets.token_hex(8), hashlib.sha256(), 0
        with tmp.open("wb") as f:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                f.write(chunk)
        if digest.hexdigest() != expected_sha256 or size != expected_size:
            tmp.unlink()
            return False
        self.blob_path(expected_sha256).parent.mkdir(exist_ok=True)
        os.replace(tmp, self.blob_path(expected_sha256))
        return True

    def commit(self, commit_id: str) -> dict[str, Any]:
        return json.loads((self.root / "commits" / f"{commit_id}.json").read_text())

    def new_commit(self, parent: str | None, tree: dict[str, Any], title: str, message: str, author: str) -> str:
        commit = {"parents": [parent] if parent else [], "tree": tree, "title": title, "message": message}
        commit |= {"author": author, "date": now_iso()}
        commit_id = hashlib.sha1(json.dumps(commit, sort_keys=True).encode()).hexdigest()
        self._write(self.root / "commits" / f"{commit_id}.json", json.dumps(commit).encode())
        return commit_id

    def create_repo(self, repo_type: str, repo_id: str, owner: str, private: bool) -> None:
        initial = self.new_commit(None, {}, "initial commit", "", "system")
        repo = {"type": repo_type, "id": repo_id, "owner": owner, "private": private, "createdAt": now_iso()}
        self.save_repo(repo | {"refs": {"main": initial}, "commits": [initial]})


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # snapshot_download opens several connections at once

    def __init__(self, port: int, store: Store, users: Mapping[str, str], verbose: bool = False) -> None:
        super().__init__(("127.0.0.1", port), HubHandler)
        self.store, self.verbose = store, verbose
        self.user_by_token = {token: name for name, token in users.items()}
        self.url = f"http://127.0.0.1:{self.server_port}"


class HubHandler(BaseHTTPRequestHandler):
    """Routes requests to the endpoints huggingface_hub calls. HTTP/1.1 keep-alive: every response has a
    Content-Length, and a request body is always consumed (or the connection closed) before the next request."""

    protocol_version = "HTTP/1.1"
    server: HubHTTPServer

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # --- plumbing ----------------------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._body_state = "unread"
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        # Split before unquoting: revisions and tree paths arrive as one %2F-quoted segment.
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        try:
            self._route(self.command, parts)
        except HubError as e:
            self._send_error(e)
        except (ValueError, KeyError, TypeError) as e:  # malformed request: 400, since the client retries a 500
            traceback.print_exc()
            self._send_error(HubError(400, f"Malformed request: {e!r}"))
        except Exception:
            traceback.print_exc()
            self._send_error(HubError(500, "Internal server error"))

    def _send_error(self, error: HubError) -> None:
        self._drain()
        printable = "".join(c if " " <= c <= "~" else "?" for c in error.message)  # headers are latin-1, one line
        headers = {"X-Error-Message": printable, **({"X-Error-Code": error.code} if error.code else {})}
        self._send_json({"error": error.message, **error.extra}, error.status, headers | error.headers)

    def _body(self) -> Iterator[bytes]:
        """The request body in chunks: by Content-Length, or chunked transfer coding (LFS PUTs of file objects)."""
        self._body_state = "reading"
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                yield from self._read_exact(size)
                self.rfile.readline()  # the CRLF closing each chunk
            while self.rfile.readline().strip():  # optional trailers, then the empty line
                pass
        else:
            yield from self._read_exact(int(self.headers.get("Content-Length") or 0))
        self._body_state = "done"

    def _read_exact(self, size: int) -> Iterator[bytes]:
        while size > 0:
            chunk = self.rfile.read(min(size, 1 << 20))
            if not chunk:
                raise ConnectionError("client closed the connection mid-body")
            size -= len(chunk)
            yield chunk

    def _drain(self) -> None:
        """An unread body would be parsed as the next request on this keep-alive connection: read it or hang up."""
        if self._body_state == "unread":
            for _ in self._body():
                pass
        elif self._body_state == "reading":
            self.close_connection = True

    def _read_json(self) -> Any:
        raw = b"".join(self._body())
        try:
            return json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as e:
            raise HubError(400, f"Invalid JSON body: {e}") from e

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def _flag(self, name: str) -> bool:
        return self.query.get(name, [""])[0].lower() in ("1", "true")

    # --- users, repos, revisions -------------------------------------------------------------------------------------

    def _user(self) -> str | None:
        """The caller, or None when anonymous. A wrong token is a 401 on every route, as on the Hub."""
        auth = self.headers.get("Authorization", "")
        if not auth:
            return None
        user = self.server.user_by_token.get(auth.removeprefix("Bearer ").strip())
        if user is None:
            raise HubError(401, INVALID_TOKEN)
        return user

    def _writer(self) -> str:
        user = self._user()
        if user is None:
            raise HubError(401, "You must be authenticated to write")
        return user

    @staticmethod
    def _repo_id(namespace: str, name: str) -> str:
        if not (NAME_RE.fullmatch(namespace) and NAME_RE.fullmatch(name)) or ".." in name:
            raise HubError(400, f"Invalid repo id: {namespace}/{name}")
        return f"{namespace}/{name}"

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> dict[str, Any]:
        """Load a repo the caller may see. Private repos look missing to others (the Hub does not leak existence)."""
        user = self._user()
        repo = self.server.store.load_repo(repo_type, repo_id)
        if repo is None or (repo["private"] and user != repo["owner"]):
            raise HubError(401 if user is None else 404, f"Repository Not Found for {repo_id}", "RepoNotFound")
        if write and user is None:
            raise HubError(401, "You must be authenticated to write")
        if write and user != repo["owner"]:
            raise HubError(403, f"You don't have write access to {repo_id}")
        return repo

    def _resolve(self, repo: dict[str, Any], revision: str) -> str:
        """A branch name (optionally `refs/heads/...`) or a full commit id of this repo, to a commit id."""
        branch = revision.removeprefix("refs/heads/")
        if branch in repo["refs"]:
            return repo["refs"][branch]
        if SHA1_RE.fullmatch(revision) and revision in repo["commits"]:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _branch(self, repo: dict[str, Any], revision: str) -> str:
        """Commits go to branches only (a commit id is not a place one can push to)."""
        branch = revision.removeprefix("refs/heads/")
        if branch not in repo["refs"]:
            raise HubError(404, f"Branch not found: {revision}", "RevisionNotFound")
        return branch

    def _repo_url(self, repo: dict[str, Any]) -> str:
        return f"{self.server.url}/{URL_PREFIX[repo['type']]}{repo['id']}"

    # --- routing -----------------------------------------------------------------------------------------------------

    def _route(self, method: str, parts: list[str]) -> None:
        match method, parts:
            case "GET", ["api", "whoami-v2"]:
                return self._whoami()
            case "POST", ["api", "repos", "create"]:
                return self._create_repo()
            case "DELETE", ["api", "repos", "delete"]:
                return self._delete_repo()
            case "POST", ["api", "validate-yaml"]:  # called before any commit that touches README.md
                self._read_json()
                return self._send_json({"errors": [], "warnings": []})
            case _, ["api", plural, namespace, name, *rest] if plural in TYPE_BY_PLURAL:
                return self._route_repo_api(method, TYPE_BY_PLURAL[plural], self._repo_id(namespace, name), rest)
            case "PUT", ["lfs-upload", oid]:
                return self._lfs_upload(oid)
        repo_type = "model"
        if parts[0] in ("datasets", "spaces"):
            repo_type, parts = TYPE_BY_PLURAL[parts[0]], parts[1:]
        match method, parts:
            case "GET" | "HEAD", [namespace, name, "resolve", revision, *path] if path:
                return self._download(repo_type, self._repo_id(namespace, name), revision, "/".join(path))
            case "POST", [namespace, git_name, "info", "lfs", "objects", "batch"] if git_name.endswith(".git"):
                return self._lfs_batch(repo_type, self._repo_id(namespace, git_name.removesuffix(".git")))
        raise HubError(404, f"Not found: {method} {self.path}")

    def _route_repo_api(self, method: str, repo_type: str, repo_id: str, rest: list[str]) -> None:
        match method, rest:
            case "GET", []:
                return self._repo_info(repo_type, repo_id, "main")
            case "GET", ["revision", revision]:
                return self._repo_info(repo_type, repo_id, revision)
            case "GET", ["tree", revision, *path]:
                return self._tree(repo_type, repo_id, revision, "/".join(path))
            case "GET", ["refs"]:
                return self._refs(repo_type, repo_id)
            case "GET", ["commits", revision]:
                return self._commits(repo_type, repo_id, revision)
            case "POST", ["paths-info", revision]:
                return self._paths_info(repo_type, repo_id, revision)
            case "POST", ["preupload", revision]:
                return self._preupload(repo_type, repo_id, revision)
            case "POST", ["commit", revision]:
                return self._commit(repo_type, repo_id, revision)
            case "POST" | "DELETE", ["branch", branch]:
                return self._branch_op(method, repo_type, repo_id, branch)
        raise HubError(404, f"Not found: {method} {self.path}")

    # --- account and repo management ---------------------------------------------------------------------------------

    def _whoami(self) -> None:
        user = self._user()
        if user is None:
            raise HubError(401, "Invalid username or password.")
        auth = {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}}
        self._send_json({"type": "user", "name": user, "fullname": user, "orgs": [], "auth": auth})

    def _create_repo(self) -> None:
        user, body = self._writer(), self._read_json()
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        namespace = body.get("organization") or user
        repo_id = self._repo_id(namespace, str(body.get("name")))
        if namespace != user:
            raise HubError(403, f"You don't have the rights to create a {repo_type} under the namespace {namespace}")
        # huggingface_hub 2.x sends `visibility`; older clients send `private`.
        private = body.get("visibility", "private" if body.get("private") else "public") != "public"
        url = self._repo_url({"type": repo_type, "id": repo_id})
        with self.server.store.lock:
            if self.server.store.load_repo(repo_type, repo_id) is not None:
                raise HubError(409, f"You already created this {repo_type} repo", url=url)
            self.server.store.create_repo(repo_type, repo_id, user, private)
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        user, body = self._writer(), self._read_json()
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        repo_id = self._repo_id(body.get("organization") or user, str(body.get("name")))
        with self.server.store.lock:
            self.server.store.delete_repo(self._repo(repo_type, repo_id, write=True))
        self._send_json({})

    def _branch_op(self, method: str, repo_type: str, repo_id: str, branch: str) -> None:
        self._repo(repo_type, repo_id, write=True)
        body = self._read_json() if method == "POST" else {}
        if not NAME_RE.fullmatch(branch.replace("/", "-")):
            raise HubError(400, f"Invalid branch name: {branch}")
        with self.server.store.lock:
            repo = self._repo(repo_type, repo_id, write=True)
            if method == "DELETE":
                if self._branch(repo, branch) == "main":
                    raise HubError(403, "Cannot delete the main branch")
                del repo["refs"][branch]
            elif branch in repo["refs"]:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            else:
                repo["refs"][branch] = self._resolve(repo, body.get("startingPoint") or "main")
            self.server.store.save_repo(repo)
        self._send_json({})

    # --- reading -----------------------------------------------------------------------------------------------------

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_type, repo_id)
        sha = self._resolve(repo, revision)
        commit = self.server.store.commit(sha)
        siblings = []
        for path, entry in sorted(commit["tree"].items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if self._flag("blobs"):  # files_metadata=True
                sibling |= {"size": entry["size"], "blobId": entry["oid"]}
                if entry["lfs"]:
                    pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
                    sibling["lfs"] = {"size": entry["size"], "sha256": entry["sha256"], "pointerSize": pointer_size}
            siblings.append(sibling)
        info = {"_id": repo_id, "id": repo_id, "author": repo["owner"], "sha": sha, "private": repo["private"]}
        info |= {"gated": False, "disabled": False, "createdAt": repo["createdAt"], "lastModified": commit["date"]}
        self._send_json(info | {"tags": [], "downloads": 0, "likes": 0, "siblings": siblings})

    def _tree(self, repo_type: str, repo_id: str, revision: str, folder: str) -> None:
        repo = self._repo(repo_type, repo_id)
        tree = self.server.store.commit(self._resolve(repo, revision))["tree"]
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        recursive, items = self._flag("recursive"), {}
        for path, entry in tree.items():
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                directory = prefix + "/".join(parts[:depth])
                items.setdefault(directory, {"type": "directory", "oid": self._dir_oid(tree, directory), "size": 0})
            if recursive or len(parts) == 1:
                items[path] = self._file_item(entry)
        if prefix and not items:
            raise HubError(404, f"Folder not found: {folder}", "EntryNotFound")
        self._send_json([item | {"path": path} for path, item in sorted(items.items())])

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        """Metadata of given paths (form-encoded `paths`); HfFileSystem, hence `datasets`, relies on it."""
        repo = self._repo(repo_type, repo_id)
        tree = self.server.store.commit(self._resolve(repo, revision))["tree"]
        items = []
        for path in parse_qs(b"".join(self._body()).decode()).get("paths", []):
            path = path.strip("/")
            if path in tree:
                items.append(self._file_item(tree[path]) | {"path": path})
            elif any(p.startswith(path + "/") for p in tree):
                items.append({"type": "directory", "oid": self._dir_oid(tree, path), "size": 0, "path": path})
        self._send_json(items)

    @staticmethod
    def _file_item(entry: dict[str, Any]) -> dict[str, Any]:
        item = {"type": "file", "oid": entry["oid"], "size": entry["size"]}
        if entry["lfs"]:
            pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
            item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}
        return item

    @staticmethod
    def _dir_oid(tree: dict[str, Any], directory: str) -> str:
        """A folder's id changes exactly when something below it does, like a git tree id."""
        below = sorted((p, e["oid"]) for p, e in tree.items() if p.startswith(directory + "/"))
        return hashlib.sha1(json.dumps(below).encode()).hexdigest()

    def _refs(self, repo_type: str, repo_id: str) -> None:
        repo = self._repo(repo_type, repo_id)
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in sorted(repo["refs"].items())]
        self._send_json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        commit_id: str | None = self._resolve(self._repo(repo_type, repo_id), revision)
        history = []
        while commit_id:
            commit = self.server.store.commit(commit_id)
            history.append({"id": commit_id, "title": commit["title"], "message": commit["message"]})
            history[-1] |= {"authors": [{"user": commit["author"]}], "date": commit["date"]}
            commit_id = commit["parents"][0] if commit["parents"] else None
        self._send_json(history)

    def _download(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        """GET/HEAD of a file. The client's cache keys on these headers; HEAD alone must give the same metadata."""
        repo = self._repo(repo_type, repo_id)
        sha = self._resolve(repo, revision)
        entry = self.server.store.commit(sha)["tree"].get(path)
        if entry is None:  # X-Repo-Commit lets the client cache the file's absence for this commit
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": sha})
        etag, size = f'"{entry["sha256"] if entry["lfs"] else entry["oid"]}"', entry["size"]
        headers = {"ETag": etag, "X-Linked-Etag": etag, "X-Linked-Size": str(size), "X-Repo-Commit": sha}
        start, end, status = 0, size, 200
        if match := re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "")):  # resumed downloads
            first, last = match.groups()
            start, end = (int(first), int(last) + 1 if last else size) if first else (max(size - int(last), 0), size)
            if start >= size or start >= end:
                raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            end, status = min(end, size), 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        self.send_response(status)
        headers |= {"Content-Type": "application/octet-stream", "Content-Length": str(end - start)}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.command == "GET":
            with self.server.store.blob_path(entry["sha256"]).open("rb") as f:
                f.seek(start)
                remaining = end - start
                while remaining > 0 and (chunk := f.read(min(remaining, 1 << 20))):
                    self.wfile.write(chunk)
                    remaining -= len(chunk)

    # --- writing -----------------------------------------------------------------------------------------------------

    def _preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        """Tell the client how to send each file, and its current oid so that unchanged files are skipped."""
        repo = self._repo(repo_type, repo_id, write=True)
        head = repo["refs"][self._branch(repo, revision)]
        tree, answers = self.server.store.commit(head)["tree"], []
        for item in self._read_json().get("files", []):
            path, size = check_path(item["path"]), int(item.get("size", 0))
            is_binary = b"\0" in base64.b64decode(item.get("sample", ""))
            lfs = size >= LFS_THRESHOLD or path.lower().endswith(LFS_SUFFIXES) or is_binary
            current = tree.get(path)  # the client compares sha256 for LFS files and the git blob oid otherwise
            oid = None if current is None else current["sha256"] if current["lfs"] else current["oid"]
            mode = "lfs" if lfs else "regular"
            answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._send_json({"files": answers, "commitOid": head})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        """Git LFS batch API (upload only). The PUT that follows carries no token, so its URL is signed instead."""
        self._repo(repo_type, repo_id, write=True)
        objects = []
        for obj in self._read_json().get("objects", []):
            oid, size = str(obj.get("oid")), int(obj.get("size", 0))
            if not SHA256_RE.fullmatch(oid):
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid oid"}})
                continue
            objects.append({"oid": oid, "size": size, "authenticated": True})
            if not self.server.store.blob_path(oid).exists():  # no `actions`: the client skips the upload
                href = f"{self.server.url}/lfs-upload/{oid}?size={size}&sig={self._signature(oid, size)}"
                objects[-1]["actions"] = {"upload": {"href": href, "expires_in": 3600}}
        body = json.dumps({"transfer": "basic", "objects": objects}).encode()
        self._send(200, body, "application/vnd.git-lfs+json")

    def _signature(self, oid: str, size: int) -> str:
        return hmac.new(self.server.store.secret, f"{oid}:{size}".encode(), hashlib.sha256).hexdigest()

    def _lfs_upload(self, oid: str) -> None:
        size = int(self.query.get("size", ["-1"])[0])
        if not hmac.compare_digest(self.query.get("sig", [""])[0], self._signature(oid, size)):
            raise HubError(403, "Invalid or missing upload signature")
        if not self.server.store.put_stream(self._body(), oid, size):
            raise HubError(400, "Uploaded content does not match the announced sha256 and size")
        self._send(200, b"", "text/plain")

    def _commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        """Apply an NDJSON commit (header, file, lfsFile, deletedFile, deletedFolder) to a branch.

        A commit that leaves the tree unchanged creates nothing and returns the current head, like the Hub."""
        user = self._repo(repo_type, repo_id, write=True)["owner"]
        if self._flag("create_pr"):
            raise HubError(400, "Pull requests are not supported by this test server")
        lines = [json.loads(line) for line in b"".join(self._body()).splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line.get("key") == "header"), {})
        store = self.server.store
        with store.lock:  # re-read under the lock: another commit may have moved the branch meanwhile
            repo = self._repo(repo_type, repo_id, write=True)
            branch = self._branch(repo, revision)
            head = repo["refs"][branch]
            if header.get("parentCommit") not in (None, head):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            old_tree = store.commit(head)["tree"]
            tree = dict(old_tree)
            for line in lines:
                self._apply(tree, line.get("key"), line.get("value") or {})
            commit_id = head
            if tree != old_tree:
                title = header.get("summary") or "Update"
                commit_id = store.new_commit(head, tree, title, header.get("description") or "", user)
                repo["refs"][branch] = commit_id
                repo["commits"].append(commit_id)
                store.save_repo(repo)
        url = f"{self._repo_url(repo)}/commit/{commit_id}"
        self._send_json({"success": True, "commitOid": commit_id, "commitUrl": url, "pullRequestUrl": None})

    def _apply(self, tree: dict[str, Any], key: str | None, value: dict[str, Any]) -> None:
        store = self.server.store
        if key == "header":
            return
        path = check_path(str(value.get("path", "")).rstrip("/") if key == "deletedFolder" else value.get("path", ""))
        if key == "file":
            content = value.get("content", "")
            data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
            tree[path] = file_entry(store.put_blob(data), len(data), False, data)
        elif key == "lfsFile":
            oid = str(value.get("oid"))
            if not SHA256_RE.fullmatch(oid) or not store.blob_path(oid).exists():
                raise HubError(422, f"LFS object {oid} for {path} was never uploaded")
            size = store.blob_path(oid).stat().st_size
            if value.get("size", size) != size:
                raise HubError(422, f"LFS object {oid} has size {size}, not {value.get('size')}")
            tree[path] = file_entry(oid, size, True)
        elif key == "deletedFile":
            if tree.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            doomed = [p for p in tree if p.startswith(path + "/")]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del tree[p]
        else:
            raise HubError(400, f"Unknown commit operation: {key}")


class HubServer:
    """Runs this file as a subprocess for tests: isolated like a real server, stoppable and restartable by its PID.

    Use as `with HubServer(data_dir, {"alice": "tok"}) as hub: ...`, then run clients with `env=hub.env("tok")`.
    """

    def __init__(
        self, data_dir: str | os.PathLike[str], users: Mapping[str, str], port: int = 0, verbose: bool = False
    ) -> None:
        self.data_dir, self.users, self.port, self.verbose = Path(data_dir), dict(users), port, verbose
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._homes: Path | None = None

    def start(self, timeout: float = 30) -> HubServer:
        users = ",".join(f"{name}:{token}" for name, token in self.users.items())
        cmd = [sys.executable, str(Path(__file__).resolve()), "--data-dir", str(self.data_dir)]
        cmd += ["--port", str(self.port), "--users", users, *(["--verbose"] if self.verbose else [])]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline().strip() if ready else ""
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"hub server did not start (got {line!r})")
        self.url = line
        self._homes = Path(tempfile.mkdtemp(prefix="hub-client-homes-"))
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        if self._homes is not None:
            shutil.rmtree(self._homes, ignore_errors=True)
            self._homes = None

    def env(self, token: str | None = None, hf_home: str | os.PathLike[str] | None = None) -> dict[str, str]:
        """Environment for a client process. Each call gets a fresh HF_HOME unless one is given: a shared cache
        would let one user read another's private files from disk after the server refused them."""
        if self._homes is None:
            raise RuntimeError("HubServer is not running")
        env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_TO_DROP}
        home = str(hf_home) if hf_home is not None else tempfile.mkdtemp(dir=self._homes)
        env |= {"HF_ENDPOINT": self.url, "HF_HOME": home, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0"}
        env |= {"HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        if token is not None:
            env["HF_TOKEN"] = token
        return env

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parse_users(spec: str) -> dict[str, str]:
    """`alice:TOKEN_A,bob:TOKEN_B` -> {"alice": "TOKEN_A", "bob": "TOKEN_B"}."""
    users = dict(item.split(":", 1) for item in spec.split(",") if item.strip())
    return {name.strip(): token.strip() for name, token in users.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path, help="where all state lives (kept across restarts)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--users", default="", help="name:token pairs, comma-separated")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server = HubHTTPServer(args.port, Store(args.data_dir), parse_users(args.users), args.verbose)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop() sends SIGTERM: close the socket cleanly
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
