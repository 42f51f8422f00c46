"""mcv.check: one printed line (pass, fail with a hint, not answered, unknown), never raises."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import mcviz as mcv
from mcviz import grading


def _line(capsys) -> str:
    out = capsys.readouterr()
    assert out.err == ""
    lines = out.out.splitlines()
    assert len(lines) == 1, f"check must print exactly one line, got {lines}"
    return lines[0]


@pytest.fixture
def toy_question():
    """A temporary question whose answer is 42 (removed afterwards)."""

    @grading.question("zz.toy", "What is six times seven?", hint="multiply.")
    def _toy(answer):
        return grading._close(answer, 6 * 7)

    yield "zz.toy"
    del grading.QUESTIONS["zz.toy"]


def conv_macs(conv, height, width):
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    h_out = (height + 2 * ph - kh) // sh + 1
    w_out = (width + 2 * pw - kw) // sw + 1
    return conv.out_channels * h_out * w_out * conv.in_channels * kh * kw


def scale_zero_point(x, bits, symmetric):
    qmin, qmax = mcv.quantize.qrange(bits, symmetric=symmetric)
    lo, hi = min(x.min().item(), 0.0), max(x.max().item(), 0.0)
    if symmetric:
        return max(-lo, hi) / qmax, 0
    scale = (hi - lo) / (qmax - qmin)
    return scale, min(max(round(-lo / scale), qmin), qmax)


def fake_quant(x, bits, symmetric):
    qmin, qmax = mcv.quantize.qrange(bits, symmetric=symmetric)
    scale, zero_point = mcv.quantize.qparams(x, bits, symmetric=symmetric)
    q = torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def ste_fake_quant(w, bits):
    qmin, qmax = mcv.quantize.qrange(bits, symmetric=True)
    scale = w.detach().abs().max() / qmax
    rounded = torch.clamp(torch.round(w.detach() / scale), qmin, qmax) * scale
    return w + (rounded - w).detach()


def kmeans_bytes(layer, bits):
    index_bytes = -(-layer.weight.numel() * bits // 8)
    bias_bytes = 4 * layer.bias.numel() if layer.bias is not None else 0
    return index_bytes + 4 * 2**bits + bias_bytes


def pruned_macs(model, input_shape, k):
    c, h, w = input_shape
    conv, fc = model.conv1, model.fc1
    kh, kw = conv.kernel_size
    h1, w1 = h - kh + 1, w - kw + 1  # no padding, stride 1
    filters = conv.out_channels - k
    return filters * h1 * w1 * c * kh * kw + filters * (h1 // 2) * (w1 // 2) * fc.out_features

def _right_answers():
    return {
        **_solved("00.fc_inputs", "fc_inputs"),
        **_solved("00.random_prune", "random_prune"),
        **_solved("00.agreement", "agreement"),
        **_solved("01.channels_for_budget", "channels_for_budget"),
        "01.conv_macs": conv_macs,
        "01.lenet300_macs": 784 * 300 + 300 * 100 + 100 * 10,
        "01.fair_latency": "b",
        "02.scale_zero_point": scale_zero_point,
        "02.fake_quantize": fake_quant,
        **_solved("02.int8_size", "int8_size"),
        "03.ste_fake_quantize": ste_fake_quant,
        **_solved("03.kmeans_bits", "kmeans_bits"),
        "04.global_mask": _global_mask_solution,
        "04.allocate": _brute_force,
        **_solved("05.vgg_pruned_macs", "vgg_pruned_macs"),
        "05.pruned_macs": pruned_macs,
        "06.kd_loss": kd_loss,
        "06.soft_entropy": soft_entropy,
        "07.pareto": pareto_labels,
        **_solved("07.priced", "priced"),
        "08.huffman_length": lambda c: mcv.encode.huffman.coded_bits(c, mcv.encode.code_lengths(c)) / sum(c),
        "08.relative_indices": lambda mask, bits: mcv.encode.relative_indices(mask, bits).tolist(),
        "09.mcnemar": lambda a, b: mcv.stats.mcnemar(a, b).p_value,
        "09.concentration": mcv.explain.concentration,
        **_solved("10.group_scale", "group_scales"),
        **_solved("10.gptq_column", "gptq_update"),
        **_solved("11.two_four_bytes", "two_four_bytes"),
        **_solved("11.nn_agreement", "nn_agreement"),
        **_solved("12.fixed_point", "fixed_point"),
        **_solved("12.integer_linear", "int_linear"),
        **_solved("12.fold_bn", "fold"),
    }


def _solved(question: str, function: str) -> dict:
    """{question: the reference solution's function}, from tests/lesson_solutions.py."""
    import copy
    import math

    from lesson_solutions import SOLUTIONS

    namespace = {"mcv": mcv, "torch": torch, "math": math, "copy": copy}
    exec(SOLUTIONS[question], namespace)  # noqa: S102 (our own reference code)
    return {question: namespace[function]}


# ---- the four kinds of line -----------------------------------------------------------------


def test_mcv_check_is_grading_check():
    assert mcv.check is grading.check


def test_a_right_answer_passes(capsys, toy_question):
    result = mcv.check(toy_question, 42)
    assert result and result.status == "pass"
    assert _line(capsys) == "✓ zz.toy: correct"


def test_a_wrong_answer_fails_with_the_hint(capsys, toy_question):
    result = mcv.check(toy_question, 41)
    assert not result and result.status == "fail"
    line = _line(capsys)
    assert line.startswith("✗ zz.toy: not yet.")
    assert "Hint: multiply." in line
    assert "42" not in line  # the hint never gives the answer away


@pytest.mark.parametrize("starter", [..., None])
def test_the_starter_is_not_answered_yet(capsys, toy_question, starter):
    result = mcv.check(toy_question, starter)
    assert not result and result.status == "not_answered"
    assert _line(capsys).startswith("… zz.toy: not answered yet")


def test_a_stub_function_is_not_answered_yet(capsys):
    def conv_macs(conv, height, width): ...

    assert mcv.check("01.conv_macs", conv_macs).status == "not_answered"
    assert "not answered yet" in _line(capsys)

    def raises(conv, height, width):
        raise NotImplementedError

    assert mcv.check("01.conv_macs", raises).status == "not_answered"
    _line(capsys)


def test_an_unknown_question_suggests_close_names(capsys):
    result = mcv.check("01.conv_mac", 1)
    assert not result and result.status == "unknown"
    line = _line(capsys)
    assert line.startswith("? unknown question '01.conv_mac'")
    assert "01.conv_macs" in line


@pytest.mark.parametrize("name", [3, None, ["01.conv_macs"]])
def test_a_question_that_is_not_a_str_is_unknown(capsys, name):
    assert mcv.check(name, 1).status == "unknown"
    _line(capsys)


def test_an_answer_that_raises_fails_and_names_the_error(capsys):
    def broken(conv, height, width):
        return 1 / 0

    result = mcv.check("01.conv_macs", broken)
    assert result.status == "fail"
    assert "ZeroDivisionError" in _line(capsys)


@pytest.mark.parametrize("answer", ["forty-two", True, torch.ones(3), object(), float("nan"), {"a": 1}, [42]])
def test_odd_answers_fail_and_never_raise(capsys, toy_question, answer):
    result = mcv.check(toy_question, answer)
    assert result.status == "fail"
    assert _line(capsys).startswith("✗ zz.toy: not yet.")


def test_an_answer_whose_str_raises_does_not_break_check(capsys):
    class Nasty:
        def __str__(self):
            raise RuntimeError("no str")

        __repr__ = __str__

        def __float__(self):
            raise RuntimeError("no float")

    assert mcv.check("01.lenet300_macs", Nasty()).status == "fail"
    _line(capsys)


def test_a_broken_grader_does_not_raise(capsys, monkeypatch):
    def broken_close(*args, **kwargs):
        raise SystemError("grader bug")

    monkeypatch.setattr(grading._core, "_check", broken_close)  # check() lives in the core
    result = mcv.check("01.lenet300_macs", 1)
    assert result.status == "fail"
    assert "could not be checked" in _line(capsys)


@pytest.mark.parametrize("answer", [np.int64(266_200), torch.tensor(266_200), 266_200.0])
def test_numpy_and_torch_numbers_are_accepted(capsys, answer):
    assert mcv.check("01.lenet300_macs", answer)
    _line(capsys)


def test_check_result_displays_nothing_more_in_a_notebook():
    result = grading.CheckResult("x", "pass", "✓ x: correct")
    assert result._ipython_display_() is None
    assert bool(result) and not grading.CheckResult("x", "fail", "")


# ---- the registered questions ----------------------------------------------------------------


def _wrong(answer):
    if callable(answer):
        return lambda *args: answer(*args) + 1
    if isinstance(answer, str):
        return "c"
    return answer * 2


def test_every_question_passes_its_right_answer_and_fails_a_wrong_one(capsys):
    answers = _right_answers()
    assert set(answers) == set(grading.questions()), "a question has no test"
    for name, answer in answers.items():
        assert mcv.check(name, answer), capsys.readouterr().out
        assert mcv.check(name, _wrong(answer)).status == "fail", name
        line = capsys.readouterr().out
        hint = line.split("Hint:")[1]
        if isinstance(answer, (int, float)):  # the hint never states the expected value
            assert not re.search(rf"(?<![\w.]){answer:g}(?![\w.])", hint), (name, hint)


def test_every_question_reports_its_starter_as_not_answered(capsys):
    for name in grading.questions():
        assert mcv.check(name, grading.QUESTIONS[name].starter).status == "not_answered"
    capsys.readouterr()


def test_fc_inputs_must_work_for_any_image_size(capsys):
    def only_28(height, width):
        return 32 * 13 * 13

    def rounds_up(height, width):  # pooling an odd side keeps its last row here: wrong
        return 32 * ((height - 1) // 2) * ((width - 1) // 2)

    assert mcv.check("00.fc_inputs", lambda h, w: 32 * ((h - 2) // 2) * ((w - 2) // 2))
    _line(capsys)
    for wrong, case in ((only_28, "fc_inputs(8, 8)"), (rounds_up, "fc_inputs(29, 31)")):
        assert mcv.check("00.fc_inputs", wrong).status == "fail"
        assert case in _line(capsys)  # names the first case it fails, not the expected value


def test_agreement_is_a_fraction_of_predictions_not_a_count(capsys):
    def count(a, b, images):
        with torch.no_grad():
            return int((a(images).argmax(1) == b(images).argmax(1)).sum())

    def scores_equal(a, b, images):  # compares raw scores, not predicted classes
        with torch.no_grad():
            return (a(images) == b(images)).all(1).float().mean().item()

    for wrong in (count, scores_equal):
        assert mcv.check("00.agreement", wrong).status == "fail"
        _line(capsys)


def test_channels_for_budget_counts_every_bias_and_the_pooled_size(capsys):
    def no_biases(budget, height, width):
        return budget // (9 + ((height - 2) // 2) * ((width - 2) // 2) * 10)

    def unpooled(budget, height, width):
        return max(0, (budget - 10) // (10 + (height - 2) * (width - 2) * 10))

    for wrong in (no_biases, unpooled):
        assert mcv.check("01.channels_for_budget", wrong).status == "fail"
        assert "channels_for_budget(" in _line(capsys)
    # the seed CNN itself: 54,410 parameters is exactly 32 channels on 28x28
    assert mcv.models.build("seed_cnn", input_shape=(1, 28, 28), seed=0).conv1.out_channels == 32
    assert mcv.measure.model(mcv.models.build("seed_cnn", input_shape=(1, 28, 28), seed=0)).params == 54_410


def test_conv_macs_must_handle_stride_and_padding(capsys):
    def ignores_stride(conv, h, w):
        kh, kw = conv.kernel_size
        return conv.out_channels * (h - kh + 1) * (w - kw + 1) * conv.in_channels * kh * kw

    assert mcv.check("01.conv_macs", ignores_stride).status == "fail"
    assert "stride" in _line(capsys)  # names the failing case, not the expected value


def test_fair_latency_accepts_letters_case_insensitively(capsys):
    assert mcv.check("01.fair_latency", " B ")
    assert mcv.check("01.fair_latency", "a").status == "fail"
    assert mcv.check("01.fair_latency", "z").status == "fail"
    capsys.readouterr()


def test_scale_zero_point_must_widen_the_range_to_contain_zero(capsys):
    def no_widening(x, bits, symmetric):
        qmin, qmax = mcv.quantize.qrange(bits, symmetric=symmetric)
        lo, hi = x.min().item(), x.max().item()
        if symmetric:
            return max(-lo, hi) / qmax, 0
        scale = (hi - lo) / (qmax - qmin)
        return scale, round(-lo / scale)

    assert mcv.check("02.scale_zero_point", no_widening).status == "fail"
    assert "all-positive" in _line(capsys)  # names the failing case, not the expected value


def test_scale_zero_point_wants_a_pair(capsys):
    assert mcv.check("02.scale_zero_point", lambda x, bits, symmetric: 0.1).status == "fail"
    assert "a pair" in _line(capsys)


def test_fake_quantize_rejects_a_wrong_grid_and_a_wrong_shape(capsys):
    def signed_128(x, bits, symmetric):  # uses 2**(bits-1) levels each side: not mcviz's grid
        scale = x.abs().max() / 2 ** (bits - 1)
        return torch.round(x / scale) * scale

    assert mcv.check("02.fake_quantize", signed_128).status == "fail"
    assert "differs from the library" in _line(capsys)
    assert mcv.check("02.fake_quantize", lambda x, bits, symmetric: x.flatten()[:3]).status == "fail"
    assert "shaped like x" in _line(capsys)


def test_fake_quantize_tolerates_one_tie_rounded_the_other_way(capsys):
    def one_step_off(x, bits, symmetric):
        out = mcv.quantize.fake_quantize(x, bits, symmetric=symmetric).clone()
        out.view(-1)[0] += mcv.quantize.qparams(x, bits, symmetric=symmetric)[0]
        return out

    assert mcv.check("02.fake_quantize", one_step_off)
    _line(capsys)


def test_questions_prompt_and_registration():
    assert grading.questions("01.") == sorted(n for n in grading.QUESTIONS if n.startswith("01."))
    assert "LeNet-300-100" in grading.prompt("01.lenet300_macs")
    with pytest.raises(ValueError, match="unknown question"):
        grading.prompt("nope")
    with pytest.raises(ValueError, match="question name"):
        grading.question("", "empty")


def test_grading_only_imports_low_modules():
    import ast
    from pathlib import Path

    imported = set()
    for path in Path(grading.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported |= {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "mcviz"
            for alias in node.names
        }
    # grading sits above the technique modules and below reports / widgets
    assert imported <= {
        *("measure", "models", "quantize", "prune", "distill", "tradeoff", "data", "train"),
        *("encode", "stats", "explain"),  # lessons 08-09: storage, paired tests, attributions
    }


# ---- lesson 03 ----------------------------------------------------------------------------------


def test_ste_fake_quantize_needs_the_straight_through_gradient(capsys):
    def no_ste(w, bits):  # right values, but autograd differentiates the rounding: zero gradient
        qmax = mcv.quantize.qrange(bits, symmetric=True)[1]
        scale = w.detach().abs().max() / qmax
        return torch.round(w / scale) * scale

    assert mcv.check("03.ste_fake_quantize", no_ste).status == "fail"
    assert "straight-through" in _line(capsys)

    def detached(w, bits):  # right values, no gradient at all
        return mcv.quantize.fake_quantize(w.detach(), bits)

    assert mcv.check("03.ste_fake_quantize", detached).status == "fail"
    assert "no gradient" in _line(capsys)


def test_ste_fake_quantize_wants_per_tensor_values(capsys):
    def per_channel(w, bits):
        return mcv.quantize.ste_fake_quantize(w, bits, granularity="per_channel")

    assert mcv.check("03.ste_fake_quantize", per_channel).status == "fail"
    assert "differ from the library" in _line(capsys)


def _bits_from(size):
    def kmeans_bits(layer, budget):
        fitting = [b for b in range(2, 9) if size(layer, b) <= budget]
        return max(fitting) if fitting else None

    return kmeans_bits


def test_kmeans_bits_counts_the_codebook_and_a_missing_bias(capsys):
    assert mcv.check("03.kmeans_bits", _bits_from(kmeans_bytes))
    _line(capsys)

    def no_codebook(layer, bits):
        return kmeans_bytes(layer, bits) - 4 * 2**bits

    assert mcv.check("03.kmeans_bits", _bits_from(no_codebook)).status == "fail"
    _line(capsys)

    def always_bias(layer, bits):
        return -(-layer.weight.numel() * bits // 8) + 4 * 2**bits + 4 * layer.weight.shape[0]

    assert mcv.check("03.kmeans_bits", _bits_from(always_bias)).status == "fail"
    assert "bias=False" in _line(capsys)
    assert mcv.check("03.kmeans_bits", lambda layer, budget: 8).status == "fail"
    _line(capsys)


def test_kmeans_bits_grading_leaves_the_global_rng_alone(capsys):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    mcv.check("03.kmeans_bits", _bits_from(kmeans_bytes))
    assert torch.equal(torch.random.get_rng_state(), before)
    _line(capsys)


# ---- lesson 04 ---------------------------------------------------------------------------------


def _global_mask_solution(model, sparsity):
    layers = {n: m.weight.detach() for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    scores = torch.cat([w.abs().flatten() for w in layers.values()])
    keep = torch.ones(scores.numel(), dtype=torch.bool)
    keep[torch.argsort(scores, stable=True)[: round(sparsity * scores.numel())]] = False
    parts = torch.split(keep, [w.numel() for w in layers.values()])
    return {n: p.reshape(w.shape) for (n, w), p in zip(layers.items(), parts, strict=True)}


def test_global_mask_passes_the_reference_and_fails_per_layer_masks(capsys):
    assert mcv.check("04.global_mask", _global_mask_solution)
    assert _line(capsys) == "✓ 04.global_mask: correct"

    def per_layer(model, sparsity):
        return {
            n: mcv.prune.magnitude_mask(m.weight, sparsity)
            for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))
        }

    assert not mcv.check("04.global_mask", per_layer)
    line = _line(capsys)
    assert "rank all layers together" in line and "Hint:" in line

    def stub(model, sparsity): ...

    assert not mcv.check("04.global_mask", stub)
    assert "not answered yet" in _line(capsys)


def _brute_force(scan, budget_sparsity):
    import itertools

    layers = list(dict.fromkeys(scan["layer"]))
    options = {}
    for n in layers:
        rows = scan[scan.layer == n]
        options[n] = [(0.0, 0.0)] + list(zip(rows["sparsity"], rows["drop"], strict=True))
    weights = {n: int(scan.loc[scan.layer == n, "weights"].iloc[0]) for n in layers}
    total = sum(weights.values())
    best = None
    for combo in itertools.product(*(options[n] for n in layers)):
        zeros = sum(round(s * weights[n]) for n, (s, _) in zip(layers, combo, strict=True))
        drop = sum(d for _, d in combo)
        if zeros >= budget_sparsity * total and (best is None or drop < best[0]):
            best = (drop, {n: float(s) for n, (s, _) in zip(layers, combo, strict=True)})
    return best[1]


def test_allocate_passes_brute_force_and_fails_uniform_sparsity(capsys):
    assert mcv.check("04.allocate", _brute_force)
    assert _line(capsys) == "✓ 04.allocate: correct"

    def uniform(scan, budget_sparsity):
        return {n: 0.9 for n in dict.fromkeys(scan["layer"])}

    assert not mcv.check("04.allocate", uniform)
    assert "smaller summed drop" in _line(capsys)

    def too_little(scan, budget_sparsity):
        return {n: 0.0 for n in dict.fromkeys(scan["layer"])}

    assert not mcv.check("04.allocate", too_little)
    assert "under the budget" in _line(capsys)


# ---- lesson 06 ---------------------------------------------------------------------------------


def kd_loss(student_logits, teacher_logits, labels, T, alpha):
    log_p_student = F.log_softmax(student_logits / T, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / T, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1).mean()
    return alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(student_logits, labels)


def soft_entropy(model, x, T):
    with torch.no_grad():
        p = F.softmax(model(x.unsqueeze(0)) / T, dim=1)[0]
    return float(torch.special.entr(p).sum())


def test_kd_loss_names_a_missing_t_squared_and_a_swapped_alpha(capsys):
    assert mcv.check("06.kd_loss", kd_loss)
    assert _line(capsys) == "✓ 06.kd_loss: correct"

    def no_t_squared(student_logits, teacher_logits, labels, T, alpha):
        log_p_student = F.log_softmax(student_logits / T, 1)
        soft = F.kl_div(log_p_student, F.softmax(teacher_logits / T, 1), reduction="batchmean")
        return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)

    assert not mcv.check("06.kd_loss", no_t_squared)
    line = _line(capsys)
    assert "missing its T^2 factor" in line and "Hint:" in line

    def swapped(student_logits, teacher_logits, labels, T, alpha):
        return kd_loss(student_logits, teacher_logits, labels, T, 1 - alpha)

    assert not mcv.check("06.kd_loss", swapped)
    assert "the other way round" in _line(capsys)

    def reversed_kl(student_logits, teacher_logits, labels, T, alpha):  # KL(student || teacher)
        return kd_loss(teacher_logits, student_logits, labels, T, alpha)

    assert not mcv.check("06.kd_loss", reversed_kl)
    assert "kd_loss gave" in _line(capsys)

    def stub(student_logits, teacher_logits, labels, T, alpha): ...

    assert mcv.check("06.kd_loss", stub).status == "not_answered"
    _line(capsys)


def test_soft_entropy_names_bits_and_a_forgotten_temperature(capsys):
    assert mcv.check("06.soft_entropy", soft_entropy)
    assert _line(capsys) == "✓ 06.soft_entropy: correct"

    def in_bits(model, x, T):
        return soft_entropy(model, x, T) / np.log(2)

    assert not mcv.check("06.soft_entropy", in_bits)
    assert "in bits" in _line(capsys)

    def at_t_one(model, x, T):
        return soft_entropy(model, x, 1.0)

    assert not mcv.check("06.soft_entropy", at_t_one)
    assert "the entropy at T = 1" in _line(capsys)

    def batch_of_one(model, x, T):  # a tensor of shape (1,) is fine; a vector of 10 is not
        with torch.no_grad():
            p = F.softmax(model(x.unsqueeze(0)) / T, dim=1)
        return torch.special.entr(p)

    assert not mcv.check("06.soft_entropy", batch_of_one)
    assert "a single number is expected" in _line(capsys)


def test_lesson_06_grading_leaves_the_global_rng_alone(capsys):
    torch.manual_seed(321)
    before = torch.random.get_rng_state()
    mcv.check("06.kd_loss", kd_loss)
    mcv.check("06.soft_entropy", soft_entropy)
    assert torch.equal(torch.random.get_rng_state(), before)
    capsys.readouterr()


# ---- lesson 07 ---------------------------------------------------------------------------------


def pareto_labels(df, cost, metric):
    rows = df.sort_values([cost, metric], ascending=[True, False], kind="stable")
    front, best = set(), float("-inf")
    for label, value in zip(rows["label"], rows[metric], strict=True):
        if value > best:
            front.add(label)
            best = value
    return front


def test_pareto_labels_keeps_one_of_equal_rows_and_drops_dominated_ones(capsys):
    assert mcv.check("07.pareto", pareto_labels)
    assert _line(capsys) == "✓ 07.pareto: correct"

    def not_dominated(df, cost, metric):  # the definition, but it keeps every one of equal rows
        c, m = df[cost].to_numpy(), df[metric].to_numpy()
        beaten = [((c <= c[i]) & (m >= m[i]) & ((c < c[i]) | (m > m[i]))).any() for i in range(len(df))]
        return set(df["label"][~np.array(beaten)])

    assert not mcv.check("07.pareto", not_dominated)
    line = _line(capsys)
    assert "of equal rows keep only the first" in line and "Hint:" in line

    def cheapest_first(df, cost, metric):  # forgets equal costs: the worse of two may come first
        rows = df.sort_values(cost, kind="stable")
        front, best = set(), float("-inf")
        for label, value in zip(rows["label"], rows[metric], strict=True):
            if value > best:
                front.add(label)
                best = value
        return front

    assert not mcv.check("07.pareto", cheapest_first)
    assert "which another row dominates" in _line(capsys)

    assert not mcv.check("07.pareto", lambda df, cost, metric: set(df["label"][:1]))
    assert "leaves out" in _line(capsys)
    assert not mcv.check("07.pareto", lambda df, cost, metric: "baseline")
    assert "must return a set of labels" in _line(capsys)


def test_priced_needs_the_convex_hull_not_the_front_or_a_coarse_sweep(capsys):
    def whole_front(df, cost):  # every Pareto point, dents included
        return set(mcv.tradeoff.pareto(df, cost=cost)["label"])

    assert not mcv.check("07.priced", whole_front)
    assert "is never picked" in _line(capsys)

    def coarse_sweep(df, cost):  # three prices miss the points only a narrow range of λ picks
        error, c = 1 - df["accuracy"].to_numpy(), df[cost].to_numpy(dtype=float)
        return {df["label"].iloc[int(np.argmin(error + lam * c))] for lam in (0.0, 1e-4, 1.0)}

    assert not mcv.check("07.priced", coarse_sweep)
    assert "missing" in _line(capsys)
    assert not mcv.check("07.priced", lambda df, cost: "baseline")
    assert "must return a set of labels" in _line(capsys)


def test_lesson_07_grading_is_deterministic_and_leaves_the_tables_alone(capsys):
    from mcviz.grading import _lesson_07

    first, again = _lesson_07._pareto_cases(), _lesson_07._pareto_cases()
    for (name, df, _, _), (_, df2, _, _) in zip(first, again, strict=True):
        assert df.equals(df2), name
    seen = []

    def spy(df, cost, metric):  # a right answer that then overwrites its input
        seen.append(df)
        labels = set(mcv.tradeoff.pareto(df, cost=cost, metric=metric)["label"])
        df[metric] = 0.0
        return labels

    # passes only if the grader hands out a copy and computes the expected front from its own table
    assert mcv.check("07.pareto", spy)
    capsys.readouterr()
    assert seen
    for (name, df, _, _), (_, df2, _, _) in zip(first, _lesson_07._pareto_cases(), strict=True):
        assert df.equals(df2), name
    assert any(df2["accuracy"].duplicated().any() for _, df2, _, _ in first)  # ties are graded


def test_integer_linear_needs_the_zero_point_term(capsys):
    def no_zero_point(x_q, x_scale, x_zero_point, w_q, w_scale, bias, out_scale, out_zero_point):
        acc = x_q.double() @ w_q.double().T * (x_scale * w_scale) + (0 if bias is None else bias.double())
        return torch.clamp(torch.round(acc / out_scale) + out_zero_point, 0, 255).to(torch.uint8)

    assert mcv.check("12.integer_linear", no_zero_point).status == "fail"
    assert "nonzero input zero point" in _line(capsys)


def test_fold_bn_must_leave_its_input_unchanged(capsys):
    def in_place(conv, bn):
        factor = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        with torch.no_grad():
            conv.weight.mul_(factor[:, None, None, None])
        return conv

    assert mcv.check("12.fold_bn", in_place).status == "fail"
    assert "changed its input" in _line(capsys)


def test_random_prune_must_be_exact_and_leave_the_input_alone(capsys):
    def about_half(model, fraction, seed):  # the lesson's five lines: each weight dropped with probability
        import copy

        pruned, g = copy.deepcopy(model), torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in pruned.modules():
                if isinstance(layer, (nn.Linear, nn.Conv2d)):
                    layer.weight.mul_(torch.rand(layer.weight.shape, generator=g) >= fraction)
        return pruned

    assert mcv.check("00.random_prune", about_half).status == "fail"
    assert "exactly round(fraction * n)" in _line(capsys)


def test_int8_size_must_not_count_zero_points(capsys):
    def with_zero_points(model):
        layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        biases = sum(4 * m.bias.numel() for m in layers if m.bias is not None)
        return sum(m.weight.numel() + 5 * m.weight.shape[0] for m in layers) + biases  # scale + zero point

    assert mcv.check("02.int8_size", with_zero_points).status == "fail"
    assert "not what mcv.measure counts" in _line(capsys)
