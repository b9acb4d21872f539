"""One description of the kernels: the sentence of `fastlstm.kernels.SUMMARY`
stands in every place that describes them to a user."""

import pathlib
import re
import tomllib

import pytest

import fastlstm
from fastlstm import kernels

ROOT = pathlib.Path(__file__).resolve().parents[2]


def collapsed(text):
    return re.sub(r"\s+", " ", text)


def description_field():
    text = (ROOT / "DESCRIPTION").read_text()
    return re.search(r"^Description:(.*?)^\S", text, flags=re.M | re.S).group(1)


PLACES = {
    "README.md": lambda: (ROOT / "README.md").read_text(),
    "pyproject.toml description": lambda: tomllib.loads(
        (ROOT / "pyproject.toml").read_text()
    )["project"]["description"],
    "DESCRIPTION's Description": description_field,
    "man/layer_lstm.Rd": lambda: (ROOT / "man" / "layer_lstm.Rd").read_text(),
    "man/fastlstm-package.Rd": lambda: (ROOT / "man" / "fastlstm-package.Rd").read_text(),
    "fastlstm.LSTM's docstring": lambda: fastlstm.LSTM.__doc__,
    "fastlstm.kernels' docstring": lambda: kernels.__doc__,
}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_every_description_of_the_kernels_says_the_one_sentence(place):
    assert collapsed(kernels.SUMMARY) in collapsed(PLACES[place]())


def test_no_description_says_only_pytorch_has_a_fused_cpu_kernel():
    for place, read in PLACES.items():
        text = collapsed(read()).lower()
        assert "pytorch's own lstm op" not in text, place
        assert "torch's fused lstm" not in text, place
