"""Chat on runs and threads, with optional end-to-end encryption of the text.

``Chat.send`` routes by what it is given: a run id attaches the message to
that run, a thread id appends it to that thread, both do both, neither uses
the ``general`` thread. Sending publishes ``chat:message`` on the event bus
(metadata only: never the text).

Encryption
----------
With ``encrypt=True`` the text is sealed with AES-256-GCM before it leaves
this module: the store, the ledger, git objects and logs only ever see the
envelope ``ENC:v1:<salt>:<nonce>:<ciphertext>`` (URL-safe base64). The key
material comes from the environment variable named by ``[chat] key_env``.

Each message gets a fresh random 16-byte salt and 12-byte nonce; its AES key
is derived from the secret with HKDF-SHA256 (salt, ``info`` naming the
version). HKDF, not a password hash like scrypt, because the secret is meant
to be a random key (``cairn chat keygen`` makes one), not a passphrase: a
password hash's deliberate slowness would buy nothing against a 256-bit key
and would cost tens of milliseconds per message, making a listing of 1,000
encrypted messages take a minute instead of milliseconds. To keep that
reasoning sound, key material must look like a key: at least 32 bytes, no
whitespace, and some 128 bits of entropy by a character-frequency estimate
(``check_key_material``; it catches mistakes such as a passphrase or 40
spaces, it cannot certify a key). The message id is authenticated with the
text, so a sealed text moved onto another message is reported undecryptable
rather than shown. An envelope of another version (``ENC:v2:``) is refused
by name, never opened as v1.

Reading without the key shows ``[encrypted: no key, set CAIRN_CHAT_KEY]``; a
wrong key or a tampered envelope shows ``[undecryptable: wrong key or
tampered]`` for that message alone, never garbage and never an exception
that stops the listing.

Plain texts (and thread titles) pass through the chat's ``Redactor`` before
they are stored, like everything the ledger records; sealed texts are stored
as the sender wrote them, since only key holders can read them.
"""

from __future__ import annotations

import base64
import math
import os
import re
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from cairn.errors import ConfigError, ConflictError, NotFoundError, ValidationError
from cairn.events import EventBus
from cairn.events import bus as default_bus
from cairn.model import ArtifactRef, now
from cairn.model.chat import (
    GENERAL_THREAD,
    ChatMessage,
    Thread,
    new_message_id,
    validate_message_id,
    validate_thread_id,
)
from cairn.model.ledger import validate_run_id
from cairn.redact import Redactor
from cairn.storage import ChatStore, Facet, RunStore, require

if TYPE_CHECKING:  # cryptography loads only when a message is sealed or opened
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "ENVELOPE_PREFIX",
    "Chat",
    "ChatCipher",
    "ShownMessage",
    "UndecryptableError",
    "check_key_material",
    "generate_key",
]

ENVELOPE_VERSION = "v1"
ENVELOPE_PREFIX = f"ENC:{ENVELOPE_VERSION}:"
CHAT_MESSAGE = "chat:message"
_INFO = b"cairn chat v1"
MIN_KEY_BYTES = 32
#: Key material must carry at least this many bits by a character-frequency estimate.
MIN_KEY_BITS = 128
_VERSION = re.compile(r"\Av[0-9]{1,4}\Z")


class UndecryptableError(ValidationError):
    """A sealed text could not be opened: wrong key, tampered or malformed envelope, or another version."""

    def __init__(self, message: str, *, reason: str = "wrong key or tampered", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: What a listing shows in the brackets: ``wrong key or tampered`` or the unknown version.
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_key() -> str:
    """A new random 256-bit key, in the form the key variable takes (``base64:...``)."""
    while True:
        material = secrets.token_bytes(32)
        # Drawn again in the (about one in 10**9) case the frequency check would refuse it, so
        # that a key from keygen is always accepted.
        if check_key_material(material, text=False) is None:
            return "base64:" + base64.b64encode(material).decode("ascii")


def _estimated_bits(material: bytes) -> float:
    """Entropy of ``material`` by the frequency of its bytes: a rough floor-check, not a measure."""
    counts = Counter(material)
    total = len(material)
    return -sum(n * math.log2(n / total) for n in counts.values())


def check_key_material(material: bytes, *, text: bool = True) -> str | None:
    """What is wrong with ``material`` as a chat key, or None: too short, whitespace, or too little variety.

    ``text``: the material is the variable's own characters (not decoded
    ``base64:``), so whitespace in it means a passphrase or a pasting
    mistake. Keys from ``cairn chat keygen`` always pass; the check catches a
    passphrase, a repeated character or a blank value set by mistake.
    """
    if len(material) < MIN_KEY_BYTES:
        return f"holds {len(material)} bytes of key material; at least {MIN_KEY_BYTES} are needed"
    if text and any(chr(b).isspace() for b in material if b < 128):
        return "holds whitespace, so it is a passphrase or a pasting mistake, not a key"
    bits = _estimated_bits(material)
    if bits < MIN_KEY_BITS:
        return f"varies too little to be a random key (about {round(bits)} bits; at least {MIN_KEY_BITS} are needed)"
    return None


def _key_material(value: str, name: str) -> bytes:
    text = not value.startswith("base64:")
    if not text:
        try:
            material = base64.b64decode(value[len("base64:") :], validate=True)
        except ValueError:
            raise ConfigError(
                f"${name} starts with base64: but is not base64",
                key=name,
                hint="make a key with `cairn chat keygen` and put it in that variable",
            ) from None
    else:
        material = value.encode("utf-8")
    problem = check_key_material(material, text=text)
    if problem is not None:
        raise ConfigError(
            f"${name} {problem}",
            key=name,
            hint="make a key with `cairn chat keygen` and put it in that variable",
        )
    return material


class ChatCipher:
    """Seals and opens message texts with one secret (see the module docstring for the scheme)."""

    def __init__(self, secret: bytes) -> None:
        problem = check_key_material(secret, text=False)
        if problem is not None:
            raise ValidationError(f"this chat key {problem}", hint="make a key with `cairn chat keygen`")
        self._secret = secret

    @classmethod
    def from_env(cls, name: str, environ: Mapping[str, str] | None = None) -> ChatCipher | None:
        value = (os.environ if environ is None else environ).get(name)
        return cls(_key_material(value, name)) if value else None

    def _aead(self, salt: bytes) -> AESGCM:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(self._secret)
        return AESGCM(key)

    def seal(self, text: str, message_id: str) -> str:
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        sealed = self._aead(salt).encrypt(nonce, text.encode("utf-8"), message_id.encode("utf-8"))
        return f"{ENVELOPE_PREFIX}{_b64(salt)}:{_b64(nonce)}:{_b64(sealed)}"

    def open(self, envelope: str, message_id: str) -> str:
        from cryptography.exceptions import InvalidTag

        version = envelope.split(":", 2)[1] if envelope.startswith("ENC:") and envelope.count(":") >= 2 else None
        if version != ENVELOPE_VERSION:
            # Never open another version as this one: its scheme may differ in ways that matter.
            if version and _VERSION.match(version):
                raise UndecryptableError(
                    f"message {message_id} is sealed in an envelope of version {version}; "
                    f"this cairn opens {ENVELOPE_VERSION} envelopes only",
                    reason=f"unknown envelope version {version}",
                    hint="a newer cairn may read it",
                )
            raise UndecryptableError(f"message {message_id} is not a cairn envelope", reason="not a cairn envelope")
        try:
            salt_text, nonce_text, sealed_text = envelope[len(ENVELOPE_PREFIX) :].split(":")
            salt, nonce, sealed = _unb64(salt_text), _unb64(nonce_text), _unb64(sealed_text)
            if len(salt) != 16 or len(nonce) != 12:
                raise ValueError("bad lengths")
            return self._aead(salt).decrypt(nonce, sealed, message_id.encode("utf-8")).decode("utf-8")
        except (InvalidTag, ValueError, UnicodeDecodeError):
            raise UndecryptableError(f"message {message_id} could not be decrypted") from None


@attrs.frozen
class ShownMessage:
    """A message as a reader sees it: ``text`` is the plaintext, or a bracketed label saying why not.

    ``state``: ``plain``, ``decrypted``, ``locked`` (no usable key:
    ``[encrypted: no key, set CAIRN_CHAT_KEY]``) or ``undecryptable``
    (``[undecryptable: wrong key or tampered]``, or the envelope version).
    """

    message: ChatMessage
    text: str
    state: str  # plain | decrypted | locked | undecryptable

    def to_dict(self) -> dict[str, Any]:
        record = self.message.to_record()
        record["text"] = self.text
        record["state"] = self.state
        return record


class Chat:
    """Messages on runs and threads over a store."""

    def __init__(
        self,
        store: Facet,
        *,
        key_env: str = "CAIRN_CHAT_KEY",
        user: str | None = None,
        bus: EventBus | None = None,
        environ: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.store = require(store, ChatStore, doing="chat")
        self.key_env = key_env
        self.user = user
        self._bus = bus or default_bus
        self._environ = environ
        #: Masks secrets in plain texts and titles before they are stored.
        self.redactor = redactor or Redactor.from_environment(environ, names=[key_env])

    def _cipher(self) -> ChatCipher | None:
        return ChatCipher.from_env(self.key_env, self._environ)

    # -- threads ---------------------------------------------------------------

    def new_thread(
        self,
        title: str,
        *,
        tags: tuple[str, ...] | list[str] = (),
        anchor_run: str | None = None,
        thread_id: str | None = None,
    ) -> Thread:
        if not isinstance(title, str) or not title.strip():
            raise ValidationError("a thread needs a title")
        if anchor_run is not None:
            self._require_run(anchor_run)
        thread = Thread(
            thread_id=thread_id or "t-" + new_message_id(),
            title=self.redactor.text(title.strip()),
            created_at=now(),
            created_by=self.user,
            anchor_run=anchor_run,
            tags=list(tags),
        )
        try:
            self.store.put_thread(thread)
        except ConflictError:
            raise ValidationError(f"thread {thread.thread_id!r} already exists") from None
        return thread

    def threads(self) -> list[Thread]:
        return self.store.list_threads()

    def _ensure_general(self) -> None:
        if self.store.get_thread(GENERAL_THREAD) is None:
            try:
                self.store.put_thread(Thread(GENERAL_THREAD, "General", now(), created_by="cairn"))
            except ConflictError:
                pass  # another writer made it first

    def _require_run(self, run_id: str) -> None:
        validate_run_id(run_id)
        runs = require(self.store, RunStore, doing="chat on a run")
        if runs.get_run(run_id) is None:
            raise NotFoundError("run", run_id, hint="`cairn runs list` lists runs")

    # -- messages --------------------------------------------------------------

    def check_send(
        self, text: str, *, run_id: str | None = None, thread_id: str | None = None, encrypt: bool = False
    ) -> None:
        """Raise what ``send`` would refuse (no text, an unknown run or thread, no key), writing nothing.

        For callers that store something first (attachments) only if the message can be sent.
        """
        if not isinstance(text, str) or not text:
            raise ValidationError("a message needs text")
        if run_id is not None:
            self._require_run(run_id)
        if thread_id is not None:
            validate_thread_id(thread_id)
            if thread_id != GENERAL_THREAD and self.store.get_thread(thread_id) is None:
                raise NotFoundError("thread", thread_id, hint="create it with `cairn thread new TITLE`")
        if encrypt and self._cipher() is None:
            raise ConfigError(
                f"encryption needs a key in ${self.key_env}, which is not set",
                key=self.key_env,
                hint=f"make one with `cairn chat keygen` and export {self.key_env}=...",
            )

    def send(
        self,
        text: str,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        encrypt: bool = False,
        publish: bool = False,
        source: str = "manual",
        attachments: Sequence[ArtifactRef] = (),
        message_id: str | None = None,
    ) -> ChatMessage:
        """Store a message on a run and/or a thread (the ``general`` thread when neither is given).

        ``attachments`` reference files already stored (``cairn.project_artifacts``);
        ``message_id`` (default: a new one) lets a caller record the id with
        them before the message is sent.
        """
        self.check_send(text, run_id=run_id, thread_id=thread_id, encrypt=encrypt)
        if message_id is not None:
            validate_message_id(message_id)
        if thread_id == GENERAL_THREAD:
            self._ensure_general()
        if run_id is None and thread_id is None:
            thread_id = GENERAL_THREAD
            self._ensure_general()
        message_id = message_id or new_message_id()
        stored_text = text if encrypt else self.redactor.text(text)
        if encrypt:
            cipher = self._cipher()
            if cipher is None:
                raise ConfigError(
                    f"encryption needs a key in ${self.key_env}, which is not set",
                    key=self.key_env,
                    hint=f"make one with `cairn chat keygen` and export {self.key_env}=...",
                )
            stored_text = cipher.seal(text, message_id)
        message = ChatMessage(
            id=message_id,
            ts=now(),
            text=stored_text,
            user=self.user,
            thread_id=thread_id,
            run_id=run_id,
            source=source,
            publish=publish,
            encrypted=encrypt,
            attachments=tuple(attachments),
        )
        self.store.add_chat_message(message)
        self._bus.publish(
            CHAT_MESSAGE,
            {
                "id": message.id,
                "run_id": run_id,
                "thread_id": thread_id,
                "source": source,
                "encrypted": encrypt,
                "publish": publish,
                "characters": len(text),
            },
        )
        return message

    def list(
        self,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        limit: int | None = 50,
        published: bool | None = None,
    ) -> list[ShownMessage]:
        """Messages newest first, by run or by thread, decrypted when the key is at hand."""
        if run_id is not None:
            validate_run_id(run_id)
        if thread_id is not None:
            validate_thread_id(thread_id)
        messages = self.store.chat_messages(run_id=run_id, thread_id=thread_id, limit=limit, published=published)
        cipher: ChatCipher | None = None
        locked = f"[encrypted: no key, set {self.key_env}]"
        if any(m.encrypted for m in messages):
            try:
                cipher = self._cipher()
            except ConfigError:
                # A malformed key reads like no key: every sealed text stays sealed, and says why.
                locked = f"[encrypted: {self.key_env} is not a valid key, run cairn chat keygen]"
        return [self._show(m, cipher, locked) for m in messages]

    @staticmethod
    def _show(message: ChatMessage, cipher: ChatCipher | None, locked: str) -> ShownMessage:
        if not message.encrypted:
            return ShownMessage(message, message.text, "plain")
        if cipher is None:
            return ShownMessage(message, locked, "locked")
        try:
            return ShownMessage(message, cipher.open(message.text, message.id), "decrypted")
        except UndecryptableError as exc:
            return ShownMessage(message, f"[undecryptable: {exc.reason}]", "undecryptable")
