"""Tests in a real headless browser (Debian's chromium and chromium-driver; make browser-test)."""
