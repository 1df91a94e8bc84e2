# Firehose's S3 prefixes as AWS evaluates them, for the local emulators (prepended to
# moto_serial.py and localstack_main.py, which patch their Firehose with it).
#
# moto and LocalStack write a delivery's object under the configured prefix taken literally,
# followed by YYYY/MM/DD/HH/. AWS evaluates the prefix's expressions instead: each
# !{timestamp:<Java DateTimeFormatter pattern>} with the arrival time of the object's oldest
# record (UTC), !{firehose:random-string} and, in the error prefix, !{firehose:error-output-type};
# and it appends YYYY/MM/dd/HH/ only to a prefix without a timestamp expression
# (https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html). Both emulators write a
# batch at once, so its arrival time is the time it is written.
import re
import uuid

_EXPRESSION = re.compile(r"!\{([A-Za-z]+):([^}]*)\}")

# The DateTimeFormatter letters a prefix uses, as strftime directives. Any other letter is
# refused: an emulator that wrote a wrong partition silently would hide the mistake.
_PATTERN_LETTERS = {
    "yyyy": "%Y",
    "uuuu": "%Y",
    "yy": "%y",
    "MM": "%m",
    "dd": "%d",
    "HH": "%H",
    "mm": "%M",
    "ss": "%S",
}


def java_datetime(pattern, when):
    """Formats `when` with a Java DateTimeFormatter pattern (the letters above, 'quoted'
    literals, '' for a quote, anything else as it is)."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "'":
            end = pattern.find("'", i + 1)
            if end == -1:
                raise ValueError(f"unclosed quote in the timestamp pattern {pattern!r}")
            out.append(pattern[i + 1 : end] if end > i + 1 else "'")
            i = end + 1
        elif c.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == c:
                j += 1
            letters = pattern[i:j]
            if letters not in _PATTERN_LETTERS:
                raise ValueError(f"timestamp pattern {pattern!r}: {letters!r} is not supported locally")
            out.append(when.strftime(_PATTERN_LETTERS[letters]))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def evaluate_prefix(prefix, when, error_output_type=None):
    """The S3 key prefix AWS Firehose writes an object under, for a batch that arrived at
    `when` (UTC); `error_output_type` for the error prefix."""
    prefix = prefix or ""

    def expand(match):
        namespace, value = match.group(1), match.group(2)
        if namespace == "timestamp":
            return java_datetime(value, when)
        if namespace == "firehose" and value == "random-string":
            return uuid.uuid4().hex[:11]
        if namespace == "firehose" and value == "error-output-type" and error_output_type:
            return error_output_type
        raise ValueError(f"Firehose prefix expression {match.group(0)!r} is not supported locally")

    evaluated = _EXPRESSION.sub(expand, prefix)
    if "!{timestamp:" not in prefix:
        # Appended as it is: a prefix without a trailing slash runs into the date.
        evaluated += when.strftime("%Y/%m/%d/%H/")
    return evaluated


def object_key(prefix, when, stream_name, version=None, error_output_type=None):
    """<evaluated prefix><stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>, as AWS names
    a delivered object."""
    name = stream_name if version is None else f"{stream_name}-{version}"
    return (
        f"{evaluate_prefix(prefix, when, error_output_type)}"
        f"{name}-{when.strftime('%Y-%m-%d-%H-%M-%S')}-{uuid.uuid4()}"
    )
