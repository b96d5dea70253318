"""Readers for the labelled-data formats users bring: each yields small example dataclasses and
reports a bad line as one error naming the file and line (see taesan.textfiles)."""
