"""Classification metrics (scikit-learn does the counting)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score


def classification_metrics(y_true, y_pred, num_classes: int) -> dict:
    """accuracy, balanced_accuracy, macro_f1, per_class_accuracy (recall of each class) and
    per_class_support (each class's number of images in ``y_true``).

    ``macro_f1`` is the unweighted mean F1 over the classes that occur in ``y_true`` or
    ``y_pred``: a class absent from both (e.g. missing from a small test split) has no F1 and
    is left out, not counted as 0. A class only predicted, or only true, counts as F1 = 0.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D and of one length, got "
                         f"{y_true.shape} and {y_pred.shape}")
    if not y_true.size:
        raise ValueError("no labels to score (y_true and y_pred are empty); pass at least one "
                         "test image")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} holds labels outside 0..{num_classes - 1} "
                             f"(min {y.min()}, max {y.max()}); pass class ids in that range "
                             f"or a larger num_classes")
    labels = np.arange(num_classes)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    support = cm.sum(axis=1)
    per_class = np.divide(np.diag(cm), support, out=np.full(num_classes, np.nan),
                          where=support > 0)
    return {
        "accuracy": float((y_true == y_pred).mean()),
        # sklearn's balanced_accuracy_score, read off the same counts: the mean recall over
        # the classes in y_true (it warns when y_pred holds a class y_true lacks)
        "balanced_accuracy": float(np.nanmean(per_class)),
        # only the classes seen on either side: explicit, not sklearn's version-dependent
        # zero_division=np.nan; with every class present this is the mean over all of them
        "macro_f1": float(f1_score(y_true, y_pred, labels=np.union1d(y_true, y_pred),
                                   average="macro", zero_division=0)),
        "per_class_accuracy": [None if np.isnan(v) else float(v) for v in per_class],
        "per_class_support": [int(v) for v in support],
        "num_test": int(len(y_true)),
    }
