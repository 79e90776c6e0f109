"""A list response split into items as it arrives, and what a Secret record keeps: the daemon's
memory must not grow with the size of Secrets that others label as ours."""

from __future__ import annotations

import base64
import json
import random
import sys

import pytest

from syncer.core import model
from syncer.kube import codec, jsonlist

DOC = {
    "kind": "SecretList", "apiVersion": "v1",
    "metadata": {"resourceVersion": "42", "continue": 'next"page\\'},
    "items": [
        {"metadata": {"name": "a", "annotations": {"x": "}{][\"\\"}}, "data": {"k": "QUJD"}},
        {"metadata": {"name": "b"}, "data": {}},
        {"metadata": {"name": "c", "labels": {"l": "v"}}, "type": "Opaque"},
    ],
}


@pytest.mark.parametrize("seed", range(40))
def test_items_and_skeleton_come_out_whatever_the_chunk_boundaries(seed: int) -> None:
    raw = json.dumps(DOC).encode()
    rand = random.Random(seed)
    splitter, items, i = jsonlist.Splitter(), [], 0
    while i < len(raw):
        step = rand.randint(1, 40)
        items += splitter.feed(raw[i:i + step])
        i += step
    assert [json.loads(item) for item in items] == DOC["items"]
    assert splitter.skeleton() == {**DOC, "items": []}


def test_an_empty_list_and_a_list_without_items_key() -> None:
    for doc in ({"kind": "List", "metadata": {}, "items": []}, {"kind": "List"}):
        splitter = jsonlist.Splitter()
        assert splitter.feed(json.dumps(doc).encode()) == []
        assert splitter.skeleton() == doc


def test_the_buffer_never_holds_more_than_one_object_and_a_chunk() -> None:
    big = "A" * 1_200_000
    doc = {"metadata": {"resourceVersion": "1"},
           "items": [{"data": {".dockerconfigjson": big}} for _ in range(5)]}
    raw = json.dumps(doc).encode()
    splitter, held = jsonlist.Splitter(), 0
    for i in range(0, len(raw), 256 * 1024):
        assert len(splitter.feed(raw[i:i + 256 * 1024])) <= 1
        held = max(held, len(splitter._buf))
    assert held < 1_300_000 + 256 * 1024
    assert splitter.skeleton() == {"metadata": {"resourceVersion": "1"}, "items": []}


def test_an_object_beyond_any_apiserver_limit_is_refused() -> None:
    splitter = jsonlist.Splitter()
    splitter.feed(b'{"items":[{"data":"')
    with pytest.raises(jsonlist.TooLarge):
        for _ in range(20):
            splitter.feed(b"A" * 1024 * 1024)


def test_a_secret_record_keeps_a_digest_and_only_our_label_and_annotations() -> None:
    data = b'{"auths":{"x":{"auth":"' + b"B" * 900_000 + b'"}}}'
    obj = {"metadata": {"namespace": "n", "name": "s", "resourceVersion": "7",
                        "labels": {model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE,
                                   **{f"l{i}": "v" * 60 for i in range(100)}},
                        "annotations": {model.INSTANCE_ANNOTATION: "one",
                                        "pullsecret-syncer.io/other": "x" * 100_000,
                                        "unrelated": "y" * 100_000}},
           "type": model.SECRET_TYPE,
           "data": {model.DOCKERCONFIG_KEY: base64.b64encode(data).decode()}}
    secret = codec.secret(obj)
    assert secret.managed and secret.digest == model.digest(data)
    assert secret.labels == {model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE}
    assert secret.annotations == {model.INSTANCE_ANNOTATION: "one"}
    size = sum(sys.getsizeof(getattr(secret, f)) for f in secret.__slots__)
    assert size < 2_000
