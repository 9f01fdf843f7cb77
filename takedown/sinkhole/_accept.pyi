from collections.abc import Callable

READ_BYTES: int

class Acceptor:
    """Accepts and reads new connections on a listening socket; replies and closes."""

    fd: int
    held: int
    accepted: int
    refused: int
    empty: int
    partial: int
    error: int
    def __init__(
        self, fd: int, leftover: Callable[[int, bytes], object], want_local: bool = False
    ) -> None: ...
    def accept(
        self, batch: int, room: int
    ) -> list[tuple[int, str, int, bytes, tuple[str, int] | None]]: ...
    def reply(self, fd: int, answer: bytes, failure: bytes, ok: bool) -> None: ...
