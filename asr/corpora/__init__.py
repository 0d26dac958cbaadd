"""Corpus preparation: download_<corpus>() and prepare_<corpus>() per corpus."""
