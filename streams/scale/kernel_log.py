"""The NVIDIA driver's Xid lines from the kernel log, for one GPU (by its PCI address).

Why: a GPU fault (Xid 79: fallen off the bus, 48: double-bit ECC, ...) is reported by the
driver in the kernel log, while the worker on that GPU only sees a generic CUDA error
(``cudaErrorLaunchFailure``). When a worker on one of several GPUs dies or gives up, the
supervisor reads what the kernel said since that worker started and fails the GPU on an Xid
naming its PCI address. Reading ``/dev/kmsg`` needs permission (``kernel.dmesg_restrict``);
without it this finds nothing, and the restart budget still applies.
"""

from __future__ import annotations

import errno
import logging
import os

logger = logging.getLogger(__name__)

KMSG = "/dev/kmsg"


def parse_record(record: str) -> tuple[float, str] | None:
    """One ``/dev/kmsg`` record (``6,1234,5678901,-;NVRM: Xid ...``) -> (seconds since boot,
    text); None for anything else."""
    head, sep, text = record.partition(";")
    fields = head.split(",")
    if not sep or len(fields) < 3 or not fields[2].isdigit():
        return None
    return int(fields[2]) / 1e6, text.split("\n", 1)[0].strip()


def xid_lines(records: list[str], pci: str, since_s: float) -> list[str]:
    """The driver's lines naming ``pci`` (``0000:3b:00``) logged at or after ``since_s``."""
    wanted = f"PCI:{pci}".lower()
    out = []
    for record in records:
        parsed = parse_record(record)
        if parsed is None:
            continue
        at_s, text = parsed
        if at_s >= since_s and "NVRM" in text and wanted in text.lower():
            out.append(text)
    return out


def read_kmsg(path: str = KMSG) -> list[str]:
    """Every record the kernel log holds now; [] where it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        logger.debug("cannot read %s for Xid errors: %s", path, err)
        return []
    records = []
    try:
        while True:
            try:
                chunk = os.read(fd, 8192)  # one record per read
            except OSError as err:
                if err.errno == errno.EAGAIN:
                    break  # the end of what is logged
                if err.errno == errno.EPIPE:
                    continue  # overwritten while reading: the next one
                raise
            if not chunk:
                break
            records.append(chunk.decode(errors="replace"))
    except OSError as err:
        logger.debug("reading %s: %s", path, err)
    finally:
        os.close(fd)
    return records
