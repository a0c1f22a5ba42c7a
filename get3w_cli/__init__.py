"""g3w: submit and await Get3W and Abstrakt generations from the terminal."""

__version__ = "0.1.0"
