"""The one error type of detection.evaluation."""


class EvaluationError(ValueError):
    """Bad evaluation input (a file, a record, an id). The message is one line naming the
    file and what is wrong; tools print it without a traceback and exit with status 2."""


class EvaluationWarning(UserWarning):
    """Evaluation ran but the input deserves a look (e.g. no detections at all)."""
