OPENSSL_SHA256: str  # the OpenSSL functions that hash bodies, "" when hashlib does

def read_simple(
    buf: bytes, pos: int, raw_bytes: int, max_header_bytes: int, max_body_bytes: int
) -> tuple[str, str, str, dict[str, str], int, str, bytes, bool, int] | None: ...
