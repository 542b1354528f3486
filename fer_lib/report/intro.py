"""Text about the parameter profiles, for the introduction."""

PROFILES_TEXT = {
    "smoke": "embedded synthetic data and tiny models on the CPU -- it shows that every computation runs; "
             "its numbers are not a reproduction of the seeds.",
    "real-cpu": "the real datasets on disk at a CPU budget -- real data, but models and epochs far below the "
                "seeds' settings, so the numbers are indicative only.",
    "paper": "the seeds' settings (full data, epochs, input sizes and backbones), meant for a GPU -- the "
             "profile whose numbers are comparable to the seeds'.",
}
