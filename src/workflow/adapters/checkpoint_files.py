"""Checkpoints as files, signed with Ed25519 (the ``CheckpointSigner``, ``CheckpointVerifier``
and ``CheckpointStore`` ports; the format is in ``service/checkpoints.py``).

- The private key is a PEM file (PKCS#8, unencrypted, mode 0600) kept outside the database
  (setting ``checkpoint_key``); ``workflow audit keygen`` writes it and, beside it, the public
  key (``<name>.pub.pem``, SubjectPublicKeyInfo PEM), which is all an auditor needs.
- A checkpoint is ``checkpoint-<sequence, 8 digits>.json`` in the checkpoint directory
  (setting ``checkpoint_dir``). It is written to a temporary file in that directory, flushed
  to disk, then put in place with a hard link, which fails if the name is taken: a checkpoint
  appears whole or not at all, and is never replaced (``os.replace`` would overwrite one
  written meanwhile by another process).
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..domain.errors import AlreadyExists, ConfigError, StorageUnavailable

_NAME = re.compile(r"^checkpoint-(\d{8,})\.json$")


def public_key_path(private: Path) -> Path:
    """Where the public key of ``private`` is kept by default: ``x.pem`` → ``x.pub.pem``."""
    return private.with_name(private.name.removesuffix(".pem") + ".pub.pem")


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _unusable(path: Path, why: str, why_zh: str) -> ConfigError:
    return ConfigError(f"the checkpoint key {path} {why}", f"检查点密钥文件 {path} {why_zh}", key=str(path))


class Ed25519Verifier:
    """Checks signatures with a public key."""

    def __init__(self, public: Ed25519PublicKey) -> None:
        self._public = public

    @classmethod
    def from_file(cls, path: Path) -> Ed25519Verifier:
        """From a public key PEM, or from a private key PEM (its public half)."""
        data = _read_key(path)
        try:
            key = serialization.load_pem_public_key(data) if b"PUBLIC KEY" in data else \
                serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise _unusable(path, "is not a PEM key", "不是 PEM 格式的密钥") from None
        if not isinstance(key, Ed25519PublicKey):
            raise _unusable(path, "is not an Ed25519 key", "不是 Ed25519 密钥")
        return cls(key)

    def key_id(self) -> str:
        return _key_id(self._public)

    def public_pem(self) -> str:
        return _public_pem(self._public).decode("ascii")

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Ed25519Signer:
    """Signs with the private key of a PEM file."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def from_file(cls, path: Path) -> Ed25519Signer:
        data = _read_key(path)
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise _unusable(path, "is protected by a password (checkpoints are signed unattended)",
                            "设有口令，无法用于自动签名") from None
        except (ValueError, UnsupportedAlgorithm):
            raise _unusable(path, "is not a PEM private key", "不是 PEM 格式的私钥") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise _unusable(path, "is not an Ed25519 private key", "不是 Ed25519 私钥")
        return cls(key)

    def key_id(self) -> str:
        return _key_id(self._private.public_key())

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self._private.public_key())


def _read_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _unusable(path, "does not exist: run `workflow audit keygen` (or give the key's path)",
                        "不存在，请先运行 workflow audit keygen") from None
    except OSError as exc:
        raise _unusable(path, f"cannot be read ({exc.strerror})", "无法读取") from None


def generate_key(private: Path, public: Path | None = None) -> tuple[Path, Ed25519Verifier]:
    """Write a new private key (mode 0600) and its public key; refuses to replace either.
    (where the public key went, its verifier)"""
    public = public or public_key_path(private)
    for path in (private, public):
        if path.exists():
            raise AlreadyExists(f"{path} exists already: a key is never overwritten (move it away first, if it "
                                "is really to be replaced; checkpoints signed with it need its public key)",
                                f"{path} 已存在，不会覆盖已有密钥", path=str(path))
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _create(private, pem, 0o600)
    _create(public, _public_pem(key.public_key()), 0o644)
    return public, Ed25519Verifier(key.public_key())


def _create(path: Path, data: bytes, mode: int) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise AlreadyExists(f"{path} exists already: a key is never overwritten", f"{path} 已存在，不会覆盖已有密钥",
                            path=str(path)) from None
    except OSError as exc:
        raise StorageUnavailable(f"{path} cannot be written ({exc.strerror})", f"{path} 无法写入") from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)  # whatever the umask
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class CheckpointDirectory:
    """The checkpoint store: one file per checkpoint in a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def describe(self) -> str:
        return str(self.directory)

    def name(self, sequence: int) -> str:
        return f"checkpoint-{sequence:08d}.json"

    def sequences(self) -> list[int]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for n in names if (m := _NAME.match(n)))

    def read(self, sequence: int) -> bytes:
        return (self.directory / self.name(sequence)).read_bytes()

    def add(self, sequence: int, data: bytes) -> str:
        name = self.name(sequence)
        final = self.directory / name
        temporary = self.directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(temporary, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, final)  # fails if the name is taken: never replaces a checkpoint
            _sync_directory(self.directory)
        except FileExistsError:
            raise AlreadyExists(f"checkpoint #{sequence} was written meanwhile by another process; try again",
                                f"第{sequence}号检查点已由其他进程写入，请重试", sequence=sequence) from None
        except OSError as exc:
            raise StorageUnavailable(f"the checkpoint could not be written ({exc.strerror})",
                                     "检查点文件无法写入（存储空间不足或不可用）") from None
        finally:
            temporary.unlink(missing_ok=True)
        return name


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
