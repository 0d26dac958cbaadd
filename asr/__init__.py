"""asr: recurrent CTC speech recognition.

    import asr
    recognizer = asr.load_model("data/an4/exp/model_lm.pt")
    print(recognizer.transcribe("recording.wav").text)
"""

__version__ = "0.1.0"
__all__ = ["load_model", "Recognizer", "Transcript"]


def __getattr__(name: str):
    # The front door is imported on first use, so that `import asr` (and the CLI) stays light.
    if name in __all__:
        from asr import recognizer

        return getattr(recognizer, name)
    raise AttributeError(f"module 'asr' has no attribute {name!r}")
