"""Decode once, map forever: the per-(source, resolution) uint8 image cache.

The first load of a catalog at a resolution decodes and resizes every image once into
``<cache>/datasets/<name>-<key>/<R>px.npy`` (an ``.npy`` array, opened later with
``mmap_mode="r"``, so every trial and worker process shares the same pages). ``<key>`` is the
catalog's ``image_key`` (file names, sizes and mtimes; npz member checksums; generator
parameters): a changed source gets a new cache, never a stale one.

- Written atomically (:mod:`mdsearch.space.files`): the array into a temporary file, published
  with ``atomic_replace``; a sidecar ``<R>px.json``, written last, marks the entry complete. A
  ``filelock`` lock makes a second process wait for the first one's build instead of building
  the same entry again.
- Cache folder: ``cache_dir`` argument, else ``$MDSEARCH_CACHE_DIR``, else
  ``platformdirs.user_cache_dir("mdsearch")``.
- Images: converted to grayscale (Pillow mode ``L``: RGB and RGBA become luminance; 16-bit images
  are scaled to 8 bit) and resized to R x R with Pillow's antialiased bilinear filter, ignoring
  the aspect ratio (nothing at the border, e.g. the costophrenic angles, is cropped away).
- Corrupt or unreadable files are skipped, not fatal: one bad PNG among 112,120 must not stop an
  hour-long build. Each skipped file is named in the dataset's notes (the first few, with the
  count) and left out of every split; if no file at all decodes, that is a :class:`DataError`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdsearch.space import atomic_replace, atomic_write_text

from .catalog import Catalog
from .errors import DataError

__all__ = [
    "CACHE_FORMAT",
    "CachedImages",
    "cached_images",
    "decode_image",
    "resize_array",
    "resolve_cache_dir",
]

# Bump when decoding or resizing changes, so old caches are not served.
CACHE_FORMAT = 1
_BLOCK = 512  # files decoded per thread-pool round
_RENDER_BLOCK = 64  # items rendered per call: small blocks stay in the CPU caches
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, MemoryError)


@dataclass(frozen=True, eq=False)
class CachedImages:
    """The mapped cache of one catalog at one resolution.

    Args:
        images: read-only uint8 (kept, R, R) memory map.
        skipped: catalog indices of the items that could not be decoded (left out of ``images``).
        skipped_errors: ``"file: error"`` for the first few skipped items.
        path: the ``.npy`` file.
        built: True when this call decoded the images, False when it mapped an existing cache.
    """

    images: np.ndarray
    skipped: tuple[int, ...]
    skipped_errors: tuple[str, ...]
    path: Path
    built: bool


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$MDSEARCH_CACHE_DIR``, else the user cache dir."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("MDSEARCH_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mdsearch"))


def decode_image(path: Path, resolution: int) -> np.ndarray:
    """Decode one image file to a uint8 (R, R) grayscale array.

    Args:
        path: PNG or JPEG (any format Pillow reads).
        resolution: output side R in pixels.

    Returns:
        uint8 (R, R) array.

    Raises:
        OSError, ValueError, SyntaxError: the file is not a readable image (the cache skips it).
    """
    from PIL import Image

    with Image.open(path) as img:
        # JPEG: let libjpeg decode at a reduced scale (still >= R); a large speed-up for big files.
        img.draft("L", (resolution, resolution))
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            wide = np.asarray(img, dtype=np.float32)
            top = float(wide.max()) or 1.0
            img = Image.fromarray(np.clip(wide * (255.0 / top), 0, 255).astype(np.uint8))
        gray = img.convert("L")
        return _resize_pil(gray, resolution)


def resize_array(image: np.ndarray, resolution: int) -> np.ndarray:
    """Resize a uint8 (H, W) grayscale array to (R, R), as :func:`decode_image` does."""
    from PIL import Image

    if image.shape == (resolution, resolution):
        return np.asarray(image, dtype=np.uint8)
    return _resize_pil(Image.fromarray(np.asarray(image, dtype=np.uint8), mode="L"), resolution)


def _resize_pil(img, resolution: int) -> np.ndarray:
    from PIL import Image

    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def cached_images(
    catalog: Catalog, resolution: int, cache_dir: str | os.PathLike | None, *, progress: bool
) -> CachedImages:
    """Map the cache of ``catalog`` at ``resolution``, building it first if needed.

    Args:
        catalog: the source's items.
        resolution: image side R in pixels.
        cache_dir: cache folder (see :func:`resolve_cache_dir`).
        progress: show a tqdm bar on stderr while building.

    Raises:
        DataError: the cache folder cannot be written, or not one image could be decoded.
    """
    import filelock

    folder = resolve_cache_dir(cache_dir) / "datasets" / f"{catalog.name}-{catalog.image_key[:20]}"
    target = folder / f"{resolution}px.npy"
    meta_path = folder / f"{resolution}px.json"
    opened = _open_existing(catalog, resolution, target, meta_path)
    if opened is not None:
        return opened
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the data cache folder {folder} ({exc.strerror}): set "
            "MDSEARCH_CACHE_DIR or --cache-dir to a writable folder"
        ) from exc
    lock = filelock.FileLock(str(folder / f"{resolution}px.lock"))
    try:
        lock.acquire(timeout=0.5)
    except filelock.Timeout:
        if progress:
            print(f"mdsearch: waiting for another process to build {target}", file=sys.stderr)
        lock.acquire()
    try:
        # Another process may have finished the build while we waited for the lock.
        opened = _open_existing(catalog, resolution, target, meta_path)
        if opened is not None:
            return opened
        return _build(catalog, resolution, target, meta_path, progress=progress)
    finally:
        lock.release()


def _open_existing(
    catalog: Catalog, resolution: int, target: Path, meta_path: Path
) -> CachedImages | None:
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(target, mmap_mode="r")
    except (OSError, ValueError):
        return None
    skipped = tuple(int(i) for i in meta.get("skipped", ()))
    expected = (len(catalog) - len(skipped), resolution, resolution)
    if (
        meta.get("format") != CACHE_FORMAT
        or meta.get("image_key") != catalog.image_key
        or meta.get("items") != len(catalog)
        or images.shape != expected
        or images.dtype != np.uint8
    ):
        return None
    return CachedImages(images, skipped, tuple(meta.get("skipped_errors", ())), target, built=False)


def _build(
    catalog: Catalog, resolution: int, target: Path, meta_path: Path, *, progress: bool
) -> CachedImages:
    from tqdm import tqdm

    for stale in target.parent.glob(f"{resolution}px.npy.*.tmp"):
        stale.unlink(missing_ok=True)  # a crashed build's leftovers (we hold the lock)
    n = len(catalog)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    out = np.lib.format.open_memmap(
        tmp, mode="w+", dtype=np.uint8, shape=(n, resolution, resolution)
    )
    failed: dict[int, str] = {}
    desc = f"mdsearch: caching {catalog.name} at {resolution}px"
    log = progress and not sys.stderr.isatty()  # a log file gets two lines, not bar redraws
    if log:
        print(f"{desc}: {n:,} images ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    bar = tqdm(
        total=n,
        desc=desc,
        unit="img",
        file=sys.stderr,
        disable=not progress or log,
        dynamic_ncols=True,
    )
    try:
        if catalog.files is not None:
            _decode_files(catalog.files, resolution, out, failed, bar)
        else:
            _render_blocks(catalog, resolution, out, bar)
        out.flush()
    except BaseException:
        del out
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    if log:
        seconds = time.monotonic() - started
        print(
            f"{desc}: done in {seconds:.1f} s ({n / max(seconds, 1e-9):,.0f} img/s)",
            file=sys.stderr,
            flush=True,
        )
    if len(failed) == n:
        del out
        tmp.unlink(missing_ok=True)
        first = next(iter(failed.values()))
        raise DataError(f"{catalog.name}: not one of the {n:,} images could be decoded ({first})")
    if failed:
        keep = np.setdiff1d(np.arange(n), np.fromiter(failed, dtype=np.int64))
        compact_tmp = target.with_name(f"{target.name}.{os.getpid()}.compact.tmp")
        compact = np.lib.format.open_memmap(
            compact_tmp, mode="w+", dtype=np.uint8, shape=(len(keep), resolution, resolution)
        )
        for start in range(0, len(keep), 4096):
            compact[start : start + 4096] = out[keep[start : start + 4096]]
        compact.flush()
        del compact, out
        tmp.unlink()
        tmp = compact_tmp
    else:
        del out
    # Filled in place through a memory map (up to gigabytes), so not atomic_write_bytes: the
    # finished temporary file is published with the same fsync-and-rename step.
    atomic_replace(tmp, target)
    skipped = sorted(failed)
    meta = {
        "format": CACHE_FORMAT,
        "name": catalog.name,
        "image_key": catalog.image_key,
        "resolution": resolution,
        "items": n,
        "skipped": skipped,
        "skipped_errors": [failed[i] for i in skipped[:5]],
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    images = np.load(target, mmap_mode="r")
    return CachedImages(images, tuple(skipped), tuple(meta["skipped_errors"]), target, built=True)


def _decode_files(
    files: Sequence[Path], resolution: int, out: np.ndarray, failed: dict[int, str], bar
) -> None:
    # Pillow releases the GIL while decoding and resizing, so threads scale on the cores.
    workers = _workers()

    def decode(i: int) -> np.ndarray | str:
        try:
            return decode_image(files[i], resolution)
        except _DECODE_ERRORS as exc:
            return f"{files[i]}: {type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(files), _BLOCK):
            stop = min(len(files), start + _BLOCK)
            for i, result in zip(range(start, stop), pool.map(decode, range(start, stop))):
                if isinstance(result, str):
                    failed[i] = result
                else:
                    out[i] = result
            bar.update(stop - start)


def _render_blocks(catalog: Catalog, resolution: int, out: np.ndarray, bar) -> None:
    # numpy releases the GIL in its array loops: rendering blocks on threads uses all cores.
    n = len(catalog)
    starts = range(0, n, _RENDER_BLOCK)
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        blocks = pool.map(
            lambda a: catalog.render(a, min(n, a + _RENDER_BLOCK), resolution), starts
        )
        for start, block in zip(starts, blocks):
            out[start : start + len(block)] = block
            bar.update(len(block))


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))
