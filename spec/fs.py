"""File-system state and the pure semantics of each file-system operation.

State: a set of shared names, each pointing at an inode, and each inode's
content.  An inode with no name lives on while a descriptor or a mapping
holds it (the unlink-while-open rule).  Per-process state (descriptors,
private names) lives with the process, in ``spec.machine``.

Modelled, with Linux semantics: name lookup, creation, O_TRUNC, writes at
an offset that zero-fill a hole, ftruncate that shrinks or zero-extends,
unlink that keeps the inode for its holders, atomic rename, and page-granular
SIGBUS for a mapped read past end of file.
Crashes: each inode also has *durable* content, the bytes a crash leaves
(what its last successful fsync saw; a never-synced file is empty after a
crash).  Names are taken as durable at once (a journalled directory); data
is durable only through fsync, the pessimistic reading of POSIX.
The object store (S3) of a remote cache tier is state of the same value,
shared by every process: ``objects`` maps a key to the inode holding the
object's bytes and its ETag.  An object's inode is made whole by one PUT
and never written again (a PUT makes a new one), so a reader sees the old
object or the new one, never a mix; a power loss on this machine leaves
the remote store as it was.
Not modelled: directories, permissions, times, link counts above one, and
sizes beyond what the protocols write.  Every function here is pure: it returns a new state.
"""

from __future__ import annotations

from typing import NamedTuple

PAGE_SIZE = 4096

# Errno names, as the OS reports them.
ENOENT = "ENOENT"
EEXIST = "EEXIST"
EBADF = "EBADF"
EINVAL = "EINVAL"
ENOSPC = "ENOSPC"
EIO = "EIO"
EACCES = "EACCES"
ELOOP = "ELOOP"
ENOLCK = "ENOLCK"
# The object store's answers, as errnos: 404 NoSuchKey is ENOENT, an error
# or a timeout is EIO, and 412 PreconditionFailed is this one.
EPRECONDITION = "EPRECONDITION"


class Symlink(NamedTuple):
    """A symbolic link's inode content: the name it points at."""

    target: str


# An inode's content: a file's bytes, a symbolic link, or None once collected.
Content = bytes | Symlink | None


class FileSystem(NamedTuple):
    """Shared names, directories, inode contents and locks.

    names:    sorted (path, inode) pairs: what ``ls`` would show.
    contents: the bytes (or the symlink) of inode i at index i (None once
              collected).
    durable:  the bytes of inode i that survive a crash (its last fsync).
    dirs:     the directories, sorted (the root is implicit).
    locks:    sorted (inode, state) pairs for the inodes under flock: state
              n > 0 is n shared holders, -1 one exclusive holder.
    objects:  the object store: sorted (key, inode, ETag) triples.
    etags:    the last ETag handed out (each stored PUT takes the next).
    """

    names: tuple[tuple[str, int], ...] = ()
    contents: tuple[Content, ...] = ()
    durable: tuple[Content, ...] = ()
    dirs: tuple[str, ...] = ()
    locks: tuple[tuple[int, int], ...] = ()
    objects: tuple[tuple[str, int, int], ...] = ()
    etags: int = 0

    def lookup(self, path: str) -> int | None:
        """The inode that ``path`` names, or None."""
        for name, ino in self.names:
            if name == path:
                return ino
        return None

    def size(self, ino: int) -> int:
        """The size of inode ``ino`` (a symlink's is its target's length)."""
        data = self.contents[ino]
        assert data is not None, "a collected inode was used"
        return len(data.target) if isinstance(data, Symlink) else len(data)

    def file(self, path: str) -> bytes | None:
        """What opening ``path`` and reading it all gives (through a
        symlink), or None if there is no such file."""
        ino = self.lookup(path)
        data = None if ino is None else self.contents[ino]
        if isinstance(data, Symlink):
            target = self.lookup(data.target)
            data = None if target is None else self.contents[target]
        return data if isinstance(data, bytes) else None

    def object(self, key: str) -> tuple[int, int] | None:
        """The (inode, ETag) of the object at ``key``, or None (404)."""
        for k, ino, etag in self.objects:
            if k == key:
                return ino, etag
        return None

    def object_bytes(self, key: str) -> bytes | None:
        """The bytes of the object at ``key``, or None if there is none."""
        got = self.object(key)
        data = None if got is None else self.contents[got[0]]
        return data if isinstance(data, bytes) else None

    def lock(self, ino: int) -> int:
        """The flock state of inode ``ino``: 0 unlocked, n > 0 shared by
        n, -1 exclusive."""
        return next((st for i, st in self.locks if i == ino), 0)


def create(fs: FileSystem) -> tuple[FileSystem, int]:
    """A new, empty, unnamed inode.

    post: __return__[1] == len(fs.contents)
    post: __return__[0].contents[__return__[1]] == b""
    post: __return__[0].names == fs.names
    """
    return fs._replace(contents=fs.contents + (b"",), durable=fs.durable + (b"",)), len(fs.contents)


def bind(fs: FileSystem, path: str, ino: int) -> FileSystem:
    """Point shared name ``path`` at ``ino``, replacing any old binding.

    pre: len({n for n, _ in fs.names}) == len(fs.names)
    post: __return__.lookup(path) == ino
    post: all(__return__.lookup(n) == i for n, i in fs.names if n != path)
    post: list(__return__.names) == sorted(__return__.names)
    post: len({n for n, _ in __return__.names}) == len(__return__.names)
    """
    names = tuple(sorted([(n, i) for n, i in fs.names if n != path] + [(path, ino)]))
    return fs._replace(names=names)


def unbind(fs: FileSystem, path: str) -> FileSystem:
    """Remove shared name ``path`` (the inode stays for its holders).

    pre: len({n for n, _ in fs.names}) == len(fs.names)
    post: __return__.lookup(path) is None
    post: all(__return__.lookup(n) == i for n, i in fs.names if n != path)
    post: __return__.contents == fs.contents
    """
    return fs._replace(names=tuple((n, i) for n, i in fs.names if n != path))


def set_content(fs: FileSystem, ino: int, data: bytes) -> FileSystem:
    """Replace inode ``ino``'s bytes.

    pre: 0 <= ino < len(fs.contents)
    post: __return__.contents[ino] == data
    post: len(__return__.contents) == len(fs.contents)
    post: __return__.names == fs.names
    """
    contents = list(fs.contents)
    contents[ino] = data
    return fs._replace(contents=tuple(contents))


def sync(fs: FileSystem, ino: int) -> FileSystem:
    """fsync: inode ``ino``'s current bytes become its durable bytes.

    pre: 0 <= ino < len(fs.contents) == len(fs.durable)
    post: __return__.durable[ino] == fs.contents[ino]
    post: __return__.contents == fs.contents
    """
    durable = list(fs.durable)
    durable[ino] = fs.contents[ino]
    return fs._replace(durable=tuple(durable))


def crash(fs: FileSystem) -> FileSystem:
    """The file system a power loss leaves: every named inode holds its
    durable bytes; unnamed inodes are gone with their holders, and so are
    the locks.  Directories and symlinks are names: durable at once."""
    keep = sorted({i for _, i in fs.names} | {i for _, i, _ in fs.objects})
    new = {old: n for n, old in enumerate(keep)}
    remote = {i for _, i, _ in fs.objects}
    # The remote store is another machine: its objects keep their bytes.
    data = tuple(fs.contents[i] if i in remote else fs.durable[i] for i in keep)
    objects = tuple((k, new[i], e) for k, i, e in fs.objects)
    return FileSystem(tuple((nm, new[i]) for nm, i in fs.names), data, data, fs.dirs, (), objects, fs.etags)


def put_object(fs: FileSystem, key: str, ino: int) -> FileSystem:
    """Point ``key`` at inode ``ino`` (already holding the whole object),
    with the next ETag: the last writer wins.

    pre: len({k for k, _, _ in fs.objects}) == len(fs.objects)
    post: __return__.object(key) == (ino, fs.etags + 1)
    post: all(__return__.object(k) == (i, e) for k, i, e in fs.objects if k != key)
    """
    etag = fs.etags + 1
    objects = tuple(sorted([o for o in fs.objects if o[0] != key] + [(key, ino, etag)]))
    return fs._replace(objects=objects, etags=etag)


def delete_object(fs: FileSystem, key: str) -> FileSystem:
    """Remove ``key`` (nothing to do when there is none, as S3's 204).

    post: __return__.object(key) is None
    """
    return fs._replace(objects=tuple(o for o in fs.objects if o[0] != key))


def add_dir(fs: FileSystem, path: str) -> FileSystem:
    """``fs`` with directory ``path`` (its parent must exist)."""
    return fs._replace(dirs=tuple(sorted({*fs.dirs, path})))


def create_symlink(fs: FileSystem, target: str) -> tuple[FileSystem, int]:
    """A new, unnamed symlink inode pointing at ``target`` (durable at once)."""
    link = Symlink(target)
    return fs._replace(contents=fs.contents + (link,), durable=fs.durable + (link,)), len(fs.contents)


def set_lock(fs: FileSystem, ino: int, state: int) -> FileSystem:
    """``fs`` with inode ``ino``'s flock state ``state`` (0: unlocked)."""
    locks = [(i, st) for i, st in fs.locks if i != ino]
    if state:
        locks.append((ino, state))
    return fs._replace(locks=tuple(sorted(locks)))


def write_at(old: bytes, offset: int, data: bytes) -> bytes:
    """pwrite semantics: overwrite at ``offset``, zero-filling any hole
    between the old end and ``offset``, extending the size if needed.
    Only for a non-empty ``data``: a write of no bytes changes nothing on
    Linux, even past the end, and the interpreter never calls this for one.

    pre: offset >= 0
    pre: len(data) > 0
    post: len(__return__) == max(len(old), offset + len(data))
    post: __return__[offset:offset + len(data)] == data
    post: __return__[:min(offset, len(old))] == old[:min(offset, len(old))]
    post: __return__[len(old):offset] == bytes(max(0, offset - len(old)))
    post: __return__[offset + len(data):] == old[offset + len(data):]
    """
    if offset > len(old):
        old = old + bytes(offset - len(old))
    return old[:offset] + data + old[offset + len(data):]


def truncate(old: bytes, n: int) -> bytes:
    """ftruncate semantics: keep the first min(n, size) bytes; a longer
    file is extended with zero bytes.

    pre: n >= 0
    post: len(__return__) == n
    post: __return__[:min(n, len(old))] == old[:min(n, len(old))]
    post: __return__[len(old):] == bytes(max(0, n - len(old)))
    """
    return old[:n] if n <= len(old) else old + bytes(n - len(old))


def mapped_read(current: bytes, length: int) -> bytes | None:
    """Touch ``length`` mapped bytes of a file now holding ``current``.

    None means SIGBUS: some touched byte lies in a page wholly past the end
    of file.  Bytes past the end inside the last page read as zero.

    pre: length >= 0
    post: (__return__ is None) == (length > -(-len(current) // PAGE_SIZE) * PAGE_SIZE)
    post: __return__ is None or len(__return__) == length
    post: __return__ is None or __return__[:len(current)] == current[:length]
    post: __return__ is None or __return__[len(current):] == bytes(max(0, length - len(current)))
    """
    backed = -(-len(current) // PAGE_SIZE) * PAGE_SIZE
    if length > backed:
        return None
    return current[:length] + bytes(max(0, length - len(current)))


def valid(buf: bytes | None, length: int) -> bool:
    """The reader's validation: exactly ``length`` bytes, none of them a
    zero byte of a hole (Go's parser rejects NUL in every field).  It cannot
    tell two writers' entries apart, just as Go's parser cannot.

    post: __return__ == (buf is not None and len(buf) == length and 0 not in buf)
    """
    return buf is not None and len(buf) == length and 0 not in buf
