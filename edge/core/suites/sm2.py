"""SM2 signatures (GB/T 32918.2, with the GM/T 0009 user id) from the system's OpenSSL libcrypto.

Why libcrypto through ctypes and not a package from the index: docs/crypto-suites.md (the pure-Python
packages are 100x slower and not constant-time, one draws its nonce from `random`; the compiled ones
have no arm64 wheels or need a library Debian does not ship). Only OpenSSL's EVP interface is called:
key generation, PEM in and out, DigestSign/DigestVerify with SM3 and the distinguishing id. No curve
arithmetic is done here.

The id matters: OpenSSL 3.0 signs with an EMPTY id unless told, while GM/T 0009-2012 (section 10)
fixes the default user id "1234567812345678"; every call here sets it, so our signatures verify with
`openssl pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:1234567812345678` and with other GM/T
implementations. Signatures are the DER SEQUENCE {r, s} of GM/T 0009 (what OpenSSL writes).
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

DEFAULT_ID = b"1234567812345678"     # GM/T 0009-2012 section 10 (docs/crypto-suites.md)
# SubjectPublicKeyInfo prefix for an uncompressed SM2 point: id-ecPublicKey with the SM2 curve
# (1.2.156.10197.1.301), BIT STRING of 66 bytes (RFC 5480 structure, GM/T 0009 section 7.1).
_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")


class SM2Error(Exception):
    """libcrypto refused an SM2 operation (bad key, missing SM2 support); the message says which."""


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypto") or "libcrypto.so.3"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise SM2Error(f"the sm suite needs OpenSSL's libcrypto 3 ({name}): {e}") from e
    p, i, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    for fn, res, args in (
            ("OpenSSL_version_num", ctypes.c_ulong, []),
            ("ERR_get_error", ctypes.c_ulong, []),
            ("ERR_error_string_n", None, [ctypes.c_ulong, ctypes.c_char_p, sz]),
            ("BIO_new_mem_buf", p, [ctypes.c_char_p, i]),
            ("BIO_s_mem", p, []),
            ("BIO_new", p, [p]),
            ("BIO_ctrl", ctypes.c_long, [p, i, ctypes.c_long, p]),
            ("BIO_free", i, [p]),
            ("PEM_read_bio_PrivateKey", p, [p, p, p, p]),
            ("PEM_read_bio_PUBKEY", p, [p, p, p, p]),
            ("PEM_write_bio_PrivateKey", i, [p, p, p, p, i, p, p]),
            ("PEM_write_bio_PUBKEY", i, [p, p]),
            ("d2i_PUBKEY", p, [p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]),
            ("EVP_PKEY_free", None, [p]),
            ("EVP_PKEY_is_a", i, [p, ctypes.c_char_p]),
            ("EVP_PKEY_get_octet_string_param", i, [p, ctypes.c_char_p, ctypes.c_char_p, sz,
                                                     ctypes.POINTER(sz)]),
            ("EVP_PKEY_CTX_new_from_name", p, [p, ctypes.c_char_p, p]),
            ("EVP_PKEY_CTX_new", p, [p, p]),
            ("EVP_PKEY_CTX_free", None, [p]),
            ("EVP_PKEY_CTX_set1_id", i, [p, ctypes.c_char_p, i]),
            ("EVP_PKEY_keygen_init", i, [p]),
            ("EVP_PKEY_generate", i, [p, ctypes.POINTER(p)]),
            ("EVP_MD_CTX_new", p, []),
            ("EVP_MD_CTX_free", None, [p]),
            ("EVP_MD_CTX_set_pkey_ctx", None, [p, p]),
            ("EVP_sm3", p, []),
            ("EVP_DigestSignInit", i, [p, p, p, p, p]),
            ("EVP_DigestSign", i, [p, ctypes.c_char_p, ctypes.POINTER(sz), ctypes.c_char_p, sz]),
            ("EVP_DigestVerifyInit", i, [p, p, p, p, p]),
            ("EVP_DigestVerify", i, [p, ctypes.c_char_p, sz, ctypes.c_char_p, sz]),
            ("EVP_PKEY_encrypt_init", i, [p]),
            ("EVP_PKEY_encrypt", i, [p, ctypes.c_char_p, ctypes.POINTER(sz), ctypes.c_char_p, sz]),
            ("EVP_PKEY_decrypt_init", i, [p]),
            ("EVP_PKEY_decrypt", i, [p, ctypes.c_char_p, ctypes.POINTER(sz), ctypes.c_char_p, sz])):
        try:
            f = getattr(lib, fn)
        except AttributeError as e:
            raise SM2Error(f"{name} lacks {fn}: the sm suite needs OpenSSL 3.0 or newer") from e
        f.restype, f.argtypes = res, args
    if lib.OpenSSL_version_num() < 0x30000000:
        raise SM2Error(f"{name} is older than OpenSSL 3.0: the sm suite needs 3.0 or newer")
    return lib


def _error(what: str) -> SM2Error:
    lib, buf = _lib(), ctypes.create_string_buffer(256)
    code = lib.ERR_get_error()
    while lib.ERR_get_error():          # drain the queue; the first error is the cause
        pass
    lib.ERR_error_string_n(code, buf, len(buf))
    return SM2Error(f"{what}: {buf.value.decode(errors='replace') if code else 'refused'}")


class _Key:
    """An EVP_PKEY of type SM2 (what OpenSSL 3 makes of an EC key on the SM2 curve), freed with this object."""

    suite = "sm"     # the name of the suite (edge.core.suites) this key belongs to

    def __init__(self, handle: int | None, what: str):
        if not handle:
            raise _error(what)
        self._h = handle
        if _lib().EVP_PKEY_is_a(handle, b"SM2") != 1:
            raise SM2Error(f"{what}: not an SM2 key (an EC key on another curve, or not EC at all)")

    def __del__(self):
        if getattr(self, "_h", None):
            _lib().EVP_PKEY_free(self._h)
            self._h = None

    def _pem(self, private: bool) -> bytes:
        lib = _lib()
        bio = lib.BIO_new(lib.BIO_s_mem())
        try:
            ok = (lib.PEM_write_bio_PrivateKey(bio, self._h, None, None, 0, None, None) if private
                  else lib.PEM_write_bio_PUBKEY(bio, self._h))
            if ok != 1:
                raise _error("writing the SM2 key")
            ptr = ctypes.c_char_p()
            n = lib.BIO_ctrl(bio, 3, 0, ctypes.byref(ptr))     # BIO_get_mem_data (BIO_CTRL_INFO)
            return ctypes.string_at(ptr, n)
        finally:
            lib.BIO_free(bio)

    def point(self) -> bytes:
        """The public point, 04 | x | y (65 bytes)."""
        buf, n = ctypes.create_string_buffer(65), ctypes.c_size_t()
        if _lib().EVP_PKEY_get_octet_string_param(self._h, b"encoded-pub-key", buf, 65, ctypes.byref(n)) != 1:
            raise _error("reading the SM2 public point")
        return buf.raw[:n.value]

    def _digest_ctx(self, uid: bytes, verify: bool):
        lib = _lib()
        md, pctx = lib.EVP_MD_CTX_new(), lib.EVP_PKEY_CTX_new(self._h, None)
        if not md or not pctx or lib.EVP_PKEY_CTX_set1_id(pctx, uid, len(uid)) != 1:
            _free(md, pctx)
            raise _error("setting the SM2 user id")
        lib.EVP_MD_CTX_set_pkey_ctx(md, pctx)
        init = lib.EVP_DigestVerifyInit if verify else lib.EVP_DigestSignInit
        if init(md, None, lib.EVP_sm3(), None, self._h) != 1:
            _free(md, pctx)
            raise _error("starting an SM2 signature with SM3")
        return md, pctx

    def _crypt(self, data: bytes, decrypt: bool) -> bytes:
        """SM2 public-key encryption (GB/T 32918.4) or its inverse; the ciphertext is GM/T 0009's DER
        SM2Cipher (C1 point, C3 = SM3 hash, C2), what OpenSSL writes and `openssl pkeyutl` reads."""
        lib, what = _lib(), "SM2 decryption" if decrypt else "SM2 encryption"
        ctx = lib.EVP_PKEY_CTX_new(self._h, None)
        try:
            init, run = ((lib.EVP_PKEY_decrypt_init, lib.EVP_PKEY_decrypt) if decrypt
                         else (lib.EVP_PKEY_encrypt_init, lib.EVP_PKEY_encrypt))
            n = ctypes.c_size_t(0)
            if not ctx or init(ctx) != 1 or run(ctx, None, ctypes.byref(n), data, len(data)) != 1:
                raise _error(what)
            buf = ctypes.create_string_buffer(n.value)
            if run(ctx, buf, ctypes.byref(n), data, len(data)) != 1:
                raise _error(what)
            return buf.raw[:n.value]
        finally:
            if ctx:
                lib.EVP_PKEY_CTX_free(ctx)


def _free(md, pctx) -> None:
    lib = _lib()
    if md:
        lib.EVP_MD_CTX_free(md)      # a pkey ctx set with EVP_MD_CTX_set_pkey_ctx stays the caller's
    if pctx:
        lib.EVP_PKEY_CTX_free(pctx)


def _read(pem: bytes, private: bool) -> int | None:
    lib = _lib()
    bio = lib.BIO_new_mem_buf(pem, len(pem))
    try:
        return (lib.PEM_read_bio_PrivateKey if private else lib.PEM_read_bio_PUBKEY)(bio, None, None, None)
    finally:
        lib.BIO_free(bio)


class SM2PublicKey(_Key):
    @classmethod
    def from_pem(cls, pem: bytes) -> "SM2PublicKey":
        return cls(_read(pem, private=False), "reading an SM2 public key (PEM SubjectPublicKeyInfo)")

    @classmethod
    def from_point(cls, point: bytes) -> "SM2PublicKey":
        """From the 65-byte uncompressed point 04 | x | y (how the standards print public keys)."""
        if len(point) != 65 or point[0] != 4:
            raise SM2Error("an SM2 public point is 65 bytes starting with 04")
        der = ctypes.c_char_p(_SPKI_PREFIX + point)
        return cls(_lib().d2i_PUBKEY(None, ctypes.byref(der), len(_SPKI_PREFIX) + 65),
                   "reading an SM2 public point (not on the curve?)")

    def pem(self) -> bytes:
        return self._pem(private=False)

    def encrypt(self, data: bytes) -> bytes:
        """`data` encrypted to this key (for a short secret such as a file key)."""
        return self._crypt(data, decrypt=False)

    def verify(self, signature: bytes, data: bytes, uid: bytes = DEFAULT_ID) -> bool:
        """True when `signature` (DER r, s) is this key's over `data` with `uid`; False otherwise,
        including a signature that is not even DER."""
        md, pctx = self._digest_ctx(uid, verify=True)
        try:
            ok = _lib().EVP_DigestVerify(md, signature, len(signature), data, len(data))
        finally:
            _free(md, pctx)
        if ok != 1:
            while _lib().ERR_get_error():   # a bad signature leaves errors queued: not ours to keep
                pass
        return ok == 1


class SM2PrivateKey(_Key):
    @classmethod
    def generate(cls) -> "SM2PrivateKey":
        lib = _lib()
        ctx, out = lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None), ctypes.c_void_p()
        try:
            if not ctx or lib.EVP_PKEY_keygen_init(ctx) != 1 or lib.EVP_PKEY_generate(ctx, ctypes.byref(out)) != 1:
                raise _error("generating an SM2 key")
        finally:
            if ctx:
                lib.EVP_PKEY_CTX_free(ctx)
        return cls(out.value, "generating an SM2 key")

    @classmethod
    def from_pem(cls, pem: bytes) -> "SM2PrivateKey":
        return cls(_read(pem, private=True), "reading an SM2 private key (PEM PKCS#8)")

    def pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: the file's permissions protect it (docs/crypto-suites.md)."""
        return self._pem(private=True)

    def public_key(self) -> SM2PublicKey:
        return SM2PublicKey.from_point(self.point())

    def decrypt(self, ciphertext: bytes) -> bytes:
        """What `SM2PublicKey.encrypt` sealed to this key; SM2Error if it was changed or is another key's."""
        return self._crypt(ciphertext, decrypt=True)

    def sign(self, data: bytes, uid: bytes = DEFAULT_ID) -> bytes:
        """The DER signature over `data`: e = SM3(Z_A | data), Z_A from `uid` and this key (GB/T 32918.2
        section 6.1); the nonce comes from OpenSSL's DRBG."""
        md, pctx = self._digest_ctx(uid, verify=False)
        try:
            n = ctypes.c_size_t(0)
            if _lib().EVP_DigestSign(md, None, ctypes.byref(n), data, len(data)) != 1:
                raise _error("sizing an SM2 signature")
            buf = ctypes.create_string_buffer(n.value)
            if _lib().EVP_DigestSign(md, buf, ctypes.byref(n), data, len(data)) != 1:
                raise _error("making an SM2 signature")
            return buf.raw[:n.value]
        finally:
            _free(md, pctx)
