"""Errors raised by the data layer, each with a message that says what to do."""


class DataNotFoundError(FileNotFoundError):
  """A data set's files are absent; the message names the files and where to put them."""


class DataConfigError(ValueError):
  """config.data names something its data set does not have (a builder config); the message
  names the key and lists the valid values."""


class LabelsError(ValueError):
  """A labelled folder's labels.csv or graph.json is malformed or does not match its images;
  the message names the file (and line, column and value where there is one) and the fix."""
