"""Go's action-cache index entry, as pure functions: encoding and validation.

The model (``spec.machine.valid``) abstracts the reader's validation to "the
exact length, no zero byte of a hole".  This module is what it abstracts: the
bytes Go's ``putIndexEntry`` writes and the checks Go's ``DiskCache.get``
makes (``cmd/go/internal/cache/cache.go``), transcribed check for check, so
CrossHair can compare them with the contracts below and with the reference
implementation (``reference.gocache``).

On-disk format, written once here beside the constant that sizes it::

    "v1 <hex ActionID> <hex OutputID> <size %20d> <unix nanos %20d>\\n"

Where Go's reader is more liberal than its writer, so is :func:`parse_entry`
(it must be: the reference reads what Go writes and Go reads what it
writes): hex digits in either case, a size or time with a ``+`` sign or
leading zeros, ``-0``.  Not modelled: ``markUsed`` (times), verify mode.
"""

from __future__ import annotations

from typing import NamedTuple

HASH_SIZE = 32  # bytes in an ActionID or OutputID (sha256)
HEX_SIZE = 2 * HASH_SIZE
# "v1" SP id SP out SP size(20) SP time(20) NL: the layout Go's entrySize sums.
ENTRY_SIZE = 2 + 1 + HEX_SIZE + 1 + HEX_SIZE + 1 + 20 + 1 + 20 + 1  # 175
INT64_MAX = 2**63 - 1

NL = b"\n"  # named, so contracts need no escape (CrossHair reads them as source)
_HEX = b"0123456789abcdefABCDEF"
_DIGITS = b"0123456789"


class Entry(NamedTuple):
    """What a valid index entry says (Go's ``cache.Entry``, time as nanos)."""

    output_id: bytes
    size: int
    time_ns: int


def entry_size(hash_size: int) -> int:
    """The entry's length for ids of ``hash_size`` bytes (Go: 175 for 32).

    pre: hash_size >= 0
    post: __return__ == 4 * hash_size + 47
    """
    # "v1" SP id SP out SP size(20) SP time(20) NL
    return 2 + 1 + 2 * hash_size + 1 + 2 * hash_size + 1 + 20 + 1 + 20 + 1


def encode_entry(action_id: bytes, output_id: bytes, size: int, time_ns: int) -> bytes:
    """The 175 bytes Go's ``putIndexEntry`` writes for its 32-byte ids."""
    if len(action_id) != HASH_SIZE or len(output_id) != HASH_SIZE:
        raise ValueError(f"ids are {HASH_SIZE} bytes, not {len(action_id)} and {len(output_id)}")
    return encode(action_id, output_id, size, time_ns)


def parse_entry(data: bytes, action_id: bytes) -> Entry | None:
    """What Go's ``DiskCache.get`` returns for a file holding ``data``: the
    entry, or None for a miss (every failure to read is one kind of miss)."""
    if len(action_id) != HASH_SIZE:
        raise ValueError(f"an ActionID is {HASH_SIZE} bytes, not {len(action_id)}")
    return parse(data, action_id)


# The layout is parametric in the id length; Go instantiates it at 32 bytes.
# The contracts below hold at every length, which lets CrossHair check them
# on short symbolic ids (a 32-byte symbolic id is beyond its reach in the
# time ``make test`` allows), and the tests check the 32-byte instance.


def encode(action_id: bytes, output_id: bytes, size: int, time_ns: int) -> bytes:
    """``fmt.Sprintf("v1 %x %x %20d %20d\\n", id, out, size, nanos)``.

    pre: len(output_id) == len(action_id)
    pre: 0 <= size <= INT64_MAX
    pre: 0 <= time_ns <= INT64_MAX
    post: len(__return__) == entry_size(len(action_id))
    post: __return__[:3] == b"v1 "
    post: __return__[-1:] == NL
    post: parse(__return__, action_id) == Entry(output_id, size, time_ns)
    """
    # %20d right-aligns in 20 columns; an int64 has at most 19 digits, so the
    # field never overflows and the entry always has entry_size bytes.
    return b"v1 %s %s %20d %20d\n" % (action_id.hex().encode(), output_id.hex().encode(), size, time_ns)


def parse(data: bytes, action_id: bytes) -> Entry | None:
    """DiskCache.get's verdict on ``data`` for ids as long as ``action_id``.

    post: __return__ is None or len(data) == entry_size(len(action_id))
    post: __return__ is None or data[:3] == b"v1 "
    post: __return__ is None or data[-1:] == NL
    post: __return__ is None or len(__return__.output_id) == len(action_id)
    post: __return__ is None or 0 <= __return__.size <= INT64_MAX
    post: __return__ is None or 0 <= __return__.time_ns <= INT64_MAX
    post: __return__ is None or 0 not in data
    """
    return _get(data, action_id)[0]


def miss_reason(data: bytes, action_id: bytes) -> str:
    """Why Go's reader would miss on ``data`` ("" when it would hit), in
    the words of Go's ``missing(errors.New(...))``.

    post: (__return__ == "") == (parse(data, action_id) is not None)
    """
    return _get(data, action_id)[1]


def _get(data: bytes, action_id: bytes) -> tuple[Entry | None, str]:
    """DiskCache.get after the open: its checks, in its order."""
    hex_size, size_ = 2 * len(action_id), entry_size(len(action_id))
    # io.ReadFull into entrySize+1 bytes: one more than fits shows "too long".
    n = min(len(data), size_ + 1)
    if n > size_:
        return None, "too long"
    if n == 0:
        return None, "file is empty"
    if n < size_:
        return None, "entry file incomplete"
    e = data
    if (
        e[0:3] != b"v1 "
        or e[3 + hex_size] != ord(" ")
        or e[3 + hex_size + 1 + hex_size] != ord(" ")
        or e[3 + hex_size + 1 + hex_size + 1 + 20] != ord(" ")
        or e[size_ - 1] != ord("\n")
    ):
        return None, "invalid header"
    eid = e[3:3 + hex_size]
    eout = e[3 + hex_size + 1:3 + 2 * hex_size + 1]
    esize = e[3 + 2 * hex_size + 2:3 + 2 * hex_size + 22]
    etime = e[3 + 2 * hex_size + 23:3 + 2 * hex_size + 43]
    got_id = _hex_decode(eid)
    if got_id is None:
        return None, "decoding ID"
    if got_id != action_id:
        return None, "mismatched ID"
    out = _hex_decode(eout)
    if out is None:
        return None, "decoding output ID"
    size = decimal_field(esize)
    if size is None:
        return None, "parsing size"
    if size < 0:
        return None, "negative size"
    tm = decimal_field(etime)
    if tm is None:
        return None, "parsing timestamp"
    if tm < 0:
        return None, "negative timestamp"
    return Entry(out, size, tm), ""


def _hex_decode(s: bytes) -> bytes | None:
    """Go's ``hex.Decode``: pairs of hex digits, either case; None on error.

    post: __return__ is None or len(__return__) * 2 == len(s)
    """
    if len(s) % 2 or any(c not in _HEX for c in s):
        return None
    return bytes.fromhex(s.decode("ascii"))


def _parse_int64(s: bytes) -> int | None:
    """Go's ``strconv.ParseInt(s, 10, 64)``: an optional sign, then one or
    more ASCII digits (no underscores in base 10), within int64; None on
    error.

    post: __return__ is None or -INT64_MAX - 1 <= __return__ <= INT64_MAX
    """
    body = s[1:] if s[:1] in (b"+", b"-") else s
    if not body or any(c not in _DIGITS for c in body):
        return None
    v = int(body.decode("ascii"))
    if s[:1] == b"-":
        v = -v
    if not -INT64_MAX - 1 <= v <= INT64_MAX:
        return None  # Go's ErrRange
    return v


def decimal_field(field: bytes) -> int | None:
    """A size or time field as Go reads it: skip the leading spaces of %20d,
    then ``strconv.ParseInt(rest, 10, 64)``.  (None: Go's parse error.)

    post: __return__ is None or -INT64_MAX - 1 <= __return__ <= INT64_MAX
    """
    return _parse_int64(field.lstrip(b" "))


def id_field(field: bytes) -> bytes | None:
    """An id field as Go reads it: ``hex.Decode`` of 64 hex digits into a
    32-byte array.  (None: Go's decoding error; Go never passes another
    length, so none is accepted.)

    post: __return__ is None or len(__return__) == HASH_SIZE
    """
    return _hex_decode(field) if len(field) == HEX_SIZE else None


def file_name(cache_dir: str, id_: bytes, key: str) -> str:
    """Go's ``DiskCache.fileName``: ``DIR/xx/<hex id>-<key>``, where ``xx``
    is the id's first byte in hex (256 subdirectories).

    pre: len(id_) == HASH_SIZE
    pre: key in ("a", "d")
    post: __return__.startswith(cache_dir + "/")
    post: __return__.endswith("-" + key)
    post: __return__[len(cache_dir) + 1:len(cache_dir) + 3] == id_[:1].hex()
    post: __return__.split("/")[-1] == id_.hex() + "-" + key
    """
    # filepath.Join cleans the path; a plain join is what a clean cache_dir
    # (no trailing slash) gives, and GoCache is built with a clean one.
    return f"{cache_dir}/{id_[0]:02x}/{id_.hex()}-{key}"
