"""asr: recurrent CTC speech recognition."""

__version__ = "0.1.0"
