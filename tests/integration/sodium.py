"""sodium: libsodium through ctypes (the same library the binaries link),
and Key, an Ed25519 identity with the signatures the protocol defines: the
tracker's register, the chat link's auth (auth_input gives the signed bytes;
handshake.py uses it to verify the real peer's auth) and the old version 1
chat signature (docs/PROTOCOL.md).  No test state here.
"""
import ctypes

class _Sodium:
    def __init__(self):
        self.lib = ctypes.CDLL('libsodium.so.23')
        if self.lib.sodium_init() < 0:
            raise RuntimeError('sodium_init failed')

    def keypair(self):
        pk = ctypes.create_string_buffer(32)
        sk = ctypes.create_string_buffer(64)
        if self.lib.crypto_sign_keypair(pk, sk) != 0:
            raise RuntimeError('crypto_sign_keypair failed')
        return pk.raw, sk.raw

    def sign(self, sk, msg):
        sig = ctypes.create_string_buffer(64)
        siglen = ctypes.c_ulonglong(0)
        if self.lib.crypto_sign_detached(sig, ctypes.byref(siglen), msg,
                                         ctypes.c_ulonglong(len(msg)), sk) != 0:
            raise RuntimeError('crypto_sign_detached failed')
        return sig.raw

    def verify(self, pk, sig, msg):
        return self.lib.crypto_sign_verify_detached(sig, msg, ctypes.c_ulonglong(len(msg)), pk) == 0

    # -- sealed mail (peer/mail.c, PROTOCOL.md "Sealed mail")

    def box_seal(self, msg, ed_pk):
        """crypto_box_seal of msg to the X25519 form of an Ed25519 key."""
        xpk = ctypes.create_string_buffer(32)
        if self.lib.crypto_sign_ed25519_pk_to_curve25519(xpk, ed_pk) != 0:
            raise RuntimeError('not a usable Ed25519 key')
        out = ctypes.create_string_buffer(len(msg) + 48)
        if self.lib.crypto_box_seal(out, msg, ctypes.c_ulonglong(len(msg)), xpk) != 0:
            raise RuntimeError('crypto_box_seal failed')
        return out.raw

    # -- the chat link's session crypto (peer/seal.c, PROTOCOL.md "Chat link")

    def kx_keypair(self):
        pk = ctypes.create_string_buffer(32)
        sk = ctypes.create_string_buffer(32)
        self.lib.crypto_kx_keypair(pk, sk)
        return pk.raw, sk.raw

    def kx_session_keys(self, client, pk, sk, their_pk):
        rx = ctypes.create_string_buffer(32)
        tx = ctypes.create_string_buffer(32)
        fn = self.lib.crypto_kx_client_session_keys if client else \
            self.lib.crypto_kx_server_session_keys
        if fn(rx, tx, pk, sk, their_pk) != 0:
            raise RuntimeError('crypto_kx session keys failed (bad ephemeral key)')
        return rx.raw, tx.raw

    def hash(self, data, key=b'', outlen=32):
        out = ctypes.create_string_buffer(outlen)
        self.lib.crypto_generichash(out, ctypes.c_size_t(outlen), data,
                                    ctypes.c_ulonglong(len(data)), key or None,
                                    ctypes.c_size_t(len(key)))
        return out.raw

    def stream_state(self):
        return ctypes.create_string_buffer(
            self.lib.crypto_secretstream_xchacha20poly1305_statebytes())

    def stream_push_init(self, key):
        st, header = self.stream_state(), ctypes.create_string_buffer(24)
        self.lib.crypto_secretstream_xchacha20poly1305_init_push(st, header, key)
        return st, header.raw

    def stream_pull_init(self, header, key):
        st = self.stream_state()
        if self.lib.crypto_secretstream_xchacha20poly1305_init_pull(st, header, key) != 0:
            raise RuntimeError('secretstream init_pull failed')
        return st

    def stream_push(self, st, m):
        c = ctypes.create_string_buffer(len(m) + 17)
        self.lib.crypto_secretstream_xchacha20poly1305_push(
            st, c, None, m, ctypes.c_ulonglong(len(m)), None, ctypes.c_ulonglong(0),
            ctypes.c_ubyte(0))
        return c.raw

    def stream_pull(self, st, c):
        """The plaintext, or None when c does not authenticate."""
        if len(c) < 17:
            return None
        m = ctypes.create_string_buffer(len(c) - 17 + 1)
        mlen = ctypes.c_ulonglong(0)
        tag = ctypes.c_ubyte(0)
        if self.lib.crypto_secretstream_xchacha20poly1305_pull(
                st, m, ctypes.byref(mlen), ctypes.byref(tag), c, ctypes.c_ulonglong(len(c)),
                None, ctypes.c_ulonglong(0)) != 0:
            return None
        return m.raw[:mlen.value]


_sodium = None


def sodium():
    global _sodium
    if _sodium is None:
        _sodium = _Sodium()
    return _sodium


class Key:
    """A fresh Ed25519 identity (pk, sk) and the signatures it makes."""

    def __init__(self):
        self.pk, self.sk = sodium().keypair()

    def sign_register(self, nonce, name_bytes):
        return sodium().sign(self.sk, b'parley-register-v1\x00' + nonce + name_bytes)

    def sign_chat(self, their_nonce, my_name_bytes):
        return sodium().sign(self.sk, b'parley-chat-v1\x00' + their_nonce + my_name_bytes)

    def sign_auth(self, th, role, header):
        """A chat auth signature (role 'D' dialer, 'A' acceptor)."""
        return sodium().sign(self.sk, auth_input(th, role, header))


def auth_input(th, role, header):
    return b'parley-chat-v2\x00' + role.encode() + th + header


def verify_chat(pk, sig, my_nonce, their_name_bytes):
    return sodium().verify(pk, sig, b'parley-chat-v1\x00' + my_nonce + their_name_bytes)
