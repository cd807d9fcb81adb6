"""Benchmarks for TokenLedger (run through ``scripts/bench``)."""
