"""`sicog convert llava-cot`: exact structured-CoT and short-answer texts, counted skips, input untouched."""

from __future__ import annotations

import hashlib
import json

from sicog.cli import main


def _answer(summary="The question asks for the colour.", caption="A red ball on grass.",
            reasoning="The ball is clearly red.", conclusion="Red") -> str:
    return (f"<SUMMARY>{summary}</SUMMARY>\n\n<CAPTION>{caption}</CAPTION>\n\n"
            f"<REASONING>{reasoning}</REASONING>\n\n<CONCLUSION>{conclusion}</CONCLUSION>")


SINGLE = {"id": "s1", "image": "coco/1.jpg", "conversations": [
    {"from": "human", "value": "<image>\nWhat colour is the ball?\nAnswer the question using a single word or phrase."},
    {"from": "gpt", "value": _answer()}]}
MULTI = {"id": "m1", "image": "coco/2.jpg", "conversations": [
    {"from": "human", "value": "How many dogs are there?\n<image>"},
    {"from": "gpt", "value": _answer("Count the dogs.", "Two dogs on a sofa.", "I see two dogs.", "2")},
    {"from": "human", "value": "Is the sofa blue?"},
    {"from": "gpt", "value": _answer("Check the sofa colour.", "The sofa is grey.", "Grey is not blue.", "No")}]}
MALFORMED = {
    "missing-tag": _answer().replace("<CAPTION>A red ball on grass.</CAPTION>", ""),
    "repeated-tag": _answer() + "<SUMMARY>again</SUMMARY>",
    "out-of-order-tags": ("<CAPTION>c</CAPTION><SUMMARY>s</SUMMARY><REASONING>r</REASONING>"
                          "<CONCLUSION>x</CONCLUSION>"),
    "unclosed-tag": _answer().replace("</REASONING>", ""),
    "empty-part": _answer(conclusion="  "),
    "text-outside-tags": "Let me think. " + _answer(),
}


def test_llava_cot_conversion(tmp_path):
    recs = [SINGLE, MULTI]
    for k, (_reason, text) in enumerate(MALFORMED.items()):
        recs.append({"id": f"bad{k}", "image": "coco/3.jpg", "conversations": [
            {"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": text}]})
    # a multi-turn record whose second answer is broken is skipped whole
    recs.append({**MULTI, "id": "m2", "conversations": MULTI["conversations"][:3] + [
        {"from": "gpt", "value": "<SUMMARY>only</SUMMARY>"}]})
    src = tmp_path / "in" / "llava_cot.jsonl"
    src.parent.mkdir()
    src.write_text("".join(json.dumps(r) + "\n" for r in recs) + "{not json\n")
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    cot, short = tmp_path / "out" / "cot.jsonl", tmp_path / "out" / "short.jsonl"
    argv = ["convert", "llava-cot", "--data", str(src), "--out-cot", str(cot), "--out-short", str(short)]
    assert main(argv) == 0
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before

    cot_recs = [json.loads(line) for line in cot.read_text().splitlines()]
    short_recs = [json.loads(line) for line in short.read_text().splitlines()]
    assert cot_recs[0] == {"id": "s1", "image": "coco/1.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat colour is the ball?\nAnswer the question step-by-step."},
        {"from": "gpt", "value": "Step 1: Clarify the task objective.\nThe question asks for the colour.\n\n"
                                 "Step 2: Extract the crucial visual information from the image.\nA red ball on grass.\n\n"
                                 "Step 3: Generate detailed reasoning to solve the task.\nThe ball is clearly red.\n\n"
                                 "Step 4: Conclude the task with an answer.\nThe answer is Red."}]}
    assert short_recs[0] == {"id": "s1-short", "image": "coco/1.jpg", "conversations": [
        SINGLE["conversations"][0], {"from": "gpt", "value": "Red"}]}
    assert [t["value"] for t in cot_recs[1]["conversations"]] == [
        "<image>\nHow many dogs are there?\nAnswer the question step-by-step.",
        "Step 1: Clarify the task objective.\nCount the dogs.\n\n"
        "Step 2: Extract the crucial visual information from the image.\nTwo dogs on a sofa.\n\n"
        "Step 3: Generate detailed reasoning to solve the task.\nI see two dogs.\n\n"
        "Step 4: Conclude the task with an answer.\nThe answer is 2.",
        "Is the sofa blue?\nAnswer the question step-by-step.",
        "Step 1: Clarify the task objective.\nCheck the sofa colour.\n\n"
        "Step 2: Extract the crucial visual information from the image.\nThe sofa is grey.\n\n"
        "Step 3: Generate detailed reasoning to solve the task.\nGrey is not blue.\n\n"
        "Step 4: Conclude the task with an answer.\nThe answer is No."]
    assert [t["value"] for t in short_recs[1]["conversations"]] == [
        "<image>\nHow many dogs are there?", "2", "Is the sofa blue?", "No"]
    assert len(cot_recs) == len(short_recs) == 2

    summary = json.loads((tmp_path / "out" / "cot.jsonl.summary.json").read_text())
    assert summary["read"] == len(recs) + 1
    assert summary["written"] == {"--out-cot": 2, "--out-short": 2}
    assert summary["skipped"] == {"missing-tag": 2, "repeated-tag": 1, "out-of-order-tags": 1, "unclosed-tag": 1,
                                  "empty-part": 1, "text-outside-tags": 1, "invalid-json": 1}
    assert summary["skipped_examples"]["missing-tag"][1].startswith(f"{src}:9: conversations[3]: no <CAPTION>")
    assert main(argv) == 0  # the same command again: nothing to do
    assert main(argv[:-2] + [str(tmp_path / "out" / "short2.jsonl")]) == 2  # other settings refused
