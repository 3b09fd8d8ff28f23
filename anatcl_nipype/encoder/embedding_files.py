"""Embedding files: one ``.npy`` per subject, one TSV per group, written atomically.

The group table has ``participant_id`` first, then ``emb_000`` ... ``emb_511`` (or
``proj_000`` ... ``proj_127`` for the projection head), with 9 significant digits, which
round-trips float32 exactly.

>>> import tempfile, os, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "embeddings.tsv")
>>> _ = write_embeddings_tsv(path, ["sub-01"], np.array([[0.1, 2.5]], dtype=np.float32))
>>> open(path).read().splitlines()
['participant_id\\temb_000\\temb_001', 'sub-01\\t0.100000001\\t2.5']
>>> read_embeddings_tsv(path)[0]
['sub-01']
"""

import csv

import numpy as np

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import atomic_write


def embedding_columns(dim, prefix="emb"):
    """Column names of a ``dim``-wide embedding table."""
    return [f"{prefix}_{index:03d}" for index in range(dim)]


def save_embedding(path, embedding):
    """Save one embedding as a float32 ``.npy``, atomically."""
    with atomic_write(path) as tmp, open(tmp, "wb") as stream:
        np.save(stream, np.asarray(embedding, dtype=np.float32))
    return path


def write_embeddings_tsv(path, participant_ids, embeddings, prefix="emb"):
    """Write an (N, D) matrix as a TSV with ``participant_id`` first, atomically."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if len(participant_ids) != len(embeddings) or len(set(participant_ids)) != len(participant_ids):
        raise AnatCLError(f"{path}: need one unique participant_id per embedding row "
                          f"({len(participant_ids)} ids for {len(embeddings)} rows)")
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.writer(stream, delimiter="\t", lineterminator="\n")
        writer.writerow(["participant_id", *embedding_columns(embeddings.shape[1], prefix)])
        for participant_id, row in zip(participant_ids, embeddings):
            writer.writerow([participant_id, *(f"{value:.9g}" for value in row)])
    return path


def read_embeddings_tsv(path):
    """Read a table written by :func:`write_embeddings_tsv`: ``(participant_ids, matrix)``."""
    with open(path, newline="") as stream:
        rows = list(csv.reader(stream, delimiter="\t"))
    if not rows or rows[0][0] != "participant_id":
        raise AnatCLError(f"{path}: not an embeddings table (first column must be participant_id)")
    return [row[0] for row in rows[1:]], np.array([row[1:] for row in rows[1:]], dtype=np.float32)
