"""The one exception type users see: a message that says what went wrong and what to do."""


class SeqVAEError(Exception):
    """A problem with the user's input (file, corpus, checkpoint, flag).

    The command-line interface prints ``seqvae: error: <message>`` and exits non-zero,
    without a traceback, so each message must name the file (and line, where there is
    one) and say what to do.
    """
