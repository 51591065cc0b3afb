"""Batch production: items from what users type (``items``), running them isolated and resumable
(``run``), the report and zip (``report``)."""
