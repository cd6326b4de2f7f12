"""The driver's Xid lines for one GPU from the kernel log (streams/scale/kernel_log.py)."""

from __future__ import annotations

from streams.scale.kernel_log import parse_record, read_kmsg, xid_lines
from streams.scale.placement import gpu_fault

RECORDS = [
    "6,100,5000000,-;usb 1-1: new high-speed USB device\n",
    "4,101,9000000,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off "
    "the bus.\n SUBSYSTEM=pci\n",
    "4,102,9500000,-;NVRM: Xid (PCI:0000:86:00): 48, pid=99, An uncorrectable double bit error\n",
    "4,103,2000000,-;NVRM: Xid (PCI:0000:3B:00): 13, pid=7, Graphics Exception\n",  # earlier
    "garbage",
]


def test_parse_record_takes_the_time_and_the_first_line():
    assert parse_record(RECORDS[0]) == (5.0, "usb 1-1: new high-speed USB device")
    assert parse_record(RECORDS[1])[1].endswith("GPU has fallen off the bus.")
    assert parse_record("garbage") is None
    assert parse_record("6,1,x,-;text") is None


def test_xid_lines_are_the_ones_naming_the_gpu_since_its_worker_started():
    lines = xid_lines(RECORDS, "0000:3b:00", since_s=8.0)
    assert len(lines) == 1 and gpu_fault(lines[0]) == "Xid 79"
    assert [gpu_fault(x) for x in xid_lines(RECORDS, "0000:3b:00", since_s=0.0)] == [
        "Xid 79",
        "Xid 13",  # the PCI address in either case
    ]
    assert [gpu_fault(x) for x in xid_lines(RECORDS, "0000:86:00", 0.0)] == ["Xid 48"]
    assert xid_lines(RECORDS, "0000:af:00", 0.0) == []


def test_read_kmsg_never_raises(tmp_path):
    assert read_kmsg(str(tmp_path / "absent")) == []
    assert isinstance(read_kmsg(), list)  # permitted or not, here
