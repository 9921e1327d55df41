"""The scenarios of `make bench`; each returns `bench.common.Row`s and knows how many steps it takes."""
