"""Feature tables: reading the encoder/regional TSVs and joining them."""

import numpy as np
import pytest

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.prediction import join_features, read_features_tsv


def write(path, text):
    path.write_text(text)
    return path


def test_read_features_tsv_parses_numbers_and_bids_missing(tmp_path):
    path = write(tmp_path / "roi.tsv", "participant_id\tnm_lAmy_Vgm\tnm_rAmy_Vgm\n"
                                       "sub-01\t0.56\tn/a\n"
                                       "sub-02\t-1e-2\t0.61\n")
    table = read_features_tsv(path)
    assert table.index.name == "participant_id"
    assert table.index.tolist() == ["sub-01", "sub-02"]
    assert table.columns.tolist() == ["nm_lAmy_Vgm", "nm_rAmy_Vgm"]
    np.testing.assert_array_equal(table.to_numpy(), [[0.56, np.nan], [-0.01, 0.61]])


def test_read_features_tsv_handles_bom_and_crlf(tmp_path):
    path = tmp_path / "emb.tsv"
    path.write_bytes(b"\xef\xbb\xbfparticipant_id\temb_000\r\nsub-01\t1.5\r\n")
    table = read_features_tsv(path)
    assert table.to_dict("index") == {"sub-01": {"emb_000": 1.5}}


@pytest.mark.parametrize(("text", "message"), [
    ("subject\temb_000\nsub-01\t1\n", "first column is 'subject'"),
    ("participant_id\temb_000\nsub-01\t1\nsub-01\t2\n", "participant_id repeated: sub-01"),
    ("participant_id\temb_000\temb_000\nsub-01\t1\t2\n", "column repeated: emb_000"),
    ("participant_id\temb_000\nsub-01\tabc\n", "line 2, column 'emb_000': 'abc' is not a number"),
    ("participant_id\temb_000\nsub-01\t1\t2\n", "line 2: 3 cells but the header has 2"),
    ("participant_id\temb_000\n", "no participant rows"),
])
def test_read_features_tsv_refuses_bad_tables(tmp_path, text, message):
    path = write(tmp_path / "bad.tsv", text)
    with pytest.raises(PredictionError, match=message) as error:
        read_features_tsv(path)
    assert str(path) in str(error.value)


def test_read_features_tsv_missing_file(tmp_path):
    with pytest.raises(PredictionError, match="no such feature table"):
        read_features_tsv(tmp_path / "absent.tsv")


def test_join_features_inner_join_on_participant_id(tmp_path):
    embeddings = write(tmp_path / "emb.tsv", "participant_id\temb_000\temb_001\n"
                                             "sub-01\t1\t2\nsub-02\t3\t4\nsub-03\t5\t6\n")
    regional = write(tmp_path / "roi.tsv", "participant_id\tnm_lAmy_Vgm\n"
                                           "sub-03\t0.3\nsub-01\t0.1\n")
    with pytest.warns(UserWarning, match="1 participant.*left out: sub-02"):
        table = join_features([embeddings, regional])
    assert table.index.tolist() == ["sub-01", "sub-03"]
    assert table.columns.tolist() == ["emb_000", "emb_001", "nm_lAmy_Vgm"]
    np.testing.assert_array_equal(table.to_numpy(), [[1, 2, 0.1], [5, 6, 0.3]])


def test_join_features_single_table_is_returned_unchanged(tmp_path):
    path = write(tmp_path / "emb.tsv", "participant_id\temb_000\nsub-01\t1\n")
    assert join_features([path]).equals(read_features_tsv(path))


def test_join_features_refuses_column_clash(tmp_path):
    a = write(tmp_path / "a.tsv", "participant_id\temb_000\nsub-01\t1\n")
    b = write(tmp_path / "b.tsv", "participant_id\temb_000\nsub-01\t2\n")
    with pytest.raises(PredictionError,
                       match="column 'emb_000' is in feature table 1 and in table 2"):
        join_features([a, b])


def test_join_features_refuses_duplicate_ids_in_dataframes():
    import pandas as pd

    a = pd.DataFrame({"x": [1.0, 2.0]}, index=["sub-01", "sub-01"])
    b = pd.DataFrame({"y": [1.0]}, index=["sub-01"])
    with pytest.raises(PredictionError, match="feature table 1: participant_id repeated: sub-01"):
        join_features([a, b])


def test_join_features_refuses_empty_join(tmp_path):
    a = write(tmp_path / "a.tsv", "participant_id\tx\nsub-01\t1\n")
    b = write(tmp_path / "b.tsv", "participant_id\ty\n01\t2\n")
    with pytest.warns(UserWarning), pytest.raises(PredictionError, match="sub- prefix"):
        join_features([a, b])
