"""Node embedding: C++ random walks (DeepWalk, node2vec), walk pairs, skip-gram training, FastRP,
embedding files and the `gnnscale embed` / `embed-eval` commands."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from gnnscale import Graph, ops
from gnnscale.programs.main import main
from gnnscale.datasets import generate_synthetic
from gnnscale.embedding import Embeddings, SkipGram, SkipGramSettings, load_embeddings, save_embeddings
from gnnscale.embedding.evaluate import node_classification
from gnnscale.embedding.fastrp import fastrp, sparse_projection
from gnnscale.sampling.walks import RandomWalker


def small_graph():
    # 0 - 1, 0 - 2, 0 - 3, 1 - 2
    edges = torch.tensor([[0, 0, 0, 1], [1, 2, 3, 2]])
    return Graph.from_edge_index(edges, 4, symmetrize=True)


def test_walks_follow_edges_and_repeat_by_seed():
    graph = generate_synthetic(500, 4000, 4, 3, seed=0).graph
    walker = RandomWalker(graph, 20)
    starts = torch.arange(500)
    walks = walker.walk(starts, seed=3)
    assert torch.equal(walks, walker.walk(starts, seed=3)) and not torch.equal(walks, walker.walk(starts, seed=4))
    assert torch.equal(walks[:, 0], starts)
    row, col = graph.edge_index()
    edges = set(zip(row.tolist(), col.tolist()))
    for walk in walks[:50].tolist():
        steps = [(a, b) for a, b in zip(walk, walk[1:]) if a >= 0 and b >= 0]
        assert all(step in edges for step in steps)


def test_walks_stop_at_dead_ends():
    graph = Graph.from_edge_index(torch.tensor([[0, 1], [1, 2]]), 3)  # 0 -> 1 -> 2, directed
    walks = RandomWalker(graph, 5).walk(torch.tensor([0]))
    assert walks.tolist() == [[0, 1, 2, -1, -1]]


def test_node2vec_second_step_follows_p_and_q():
    # From 1 to 0, the next step goes back to 1 (weight 1/p), to 2 (a neighbour of 1: weight 1)
    # or to 3 (weight 1/q).
    p, q = 0.5, 2.0
    walks = ops.random_walk(small_graph().indptr, small_graph().indices, torch.ones(200_000, dtype=torch.int64),
                            3, p=p, q=q, seed=0)
    via_zero = walks[walks[:, 1] == 0, 2]
    observed = torch.bincount(via_zero, minlength=4)[[1, 2, 3]].numpy()
    weights = np.array([1 / p, 1.0, 1 / q])
    expected = weights / weights.sum() * observed.sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_weighted_walk_steps_follow_weights():
    edges = torch.tensor([[0, 0, 0], [1, 2, 3]])
    graph = Graph.from_edge_index(edges, 4, edge_weight=torch.tensor([1.0, 2.0, 5.0]))
    walks = RandomWalker(graph, 2, weighted=True).walk(torch.zeros(80_000, dtype=torch.int64), seed=1)
    observed = torch.bincount(walks[:, 1], minlength=4)[1:].numpy()
    assert stats.chisquare(observed, np.array([1, 2, 5]) / 8 * observed.sum()).pvalue > 1e-3


def reference_pairs(walks, window):
    pairs = []
    for walk in walks.tolist():
        walk = [v for v in walk if v >= 0]
        for i in range(len(walk)):
            for j in range(max(0, i - window), min(len(walk), i + window + 1)):
                if i != j:
                    pairs.append((walk[i], walk[j]))
    return sorted(pairs)


def test_walk_pairs_are_every_pair_within_the_window():
    walks = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, -1, -1]])
    pairs = ops.walk_pairs(walks, 2, shrink_window=False, seed=0)
    assert sorted(map(tuple, pairs.tolist())) == reference_pairs(walks, 2)
    shrunk = ops.walk_pairs(walks, 2, shrink_window=True, seed=0)
    assert set(map(tuple, shrunk.tolist())) <= set(reference_pairs(walks, 2))
    assert ops.walk_pairs(walks, 2, keep_prob=torch.zeros(8), seed=0).numel() == 0


def test_skipgram_separates_communities():
    data = generate_synthetic(600, 6000, 4, 2, homophily=0.97, seed=2)
    settings = SkipGramSettings(dim=32, num_walks=5, walk_length=20, window=3, seed=1)
    embeddings = SkipGram(data.graph, settings).fit(progress=False)
    # Skip-gram vectors share a common direction; similarity is measured around their mean.
    x = torch.nn.functional.normalize(embeddings.vertex - embeddings.vertex.mean(0), dim=1)
    same = data.labels[:, None] == data.labels[None, :]
    similarity = x @ x.t()
    assert similarity[same].mean() > similarity[~same].mean() + 0.5
    scores = node_classification(embeddings.vertex, data.labels, ratios=[0.5], repeats=2)
    assert scores[0.5]["micro_f1"] > 0.95


def test_default_subsampling_thins_only_nodes_visited_above_the_mean():
    # A star's hub takes half of all walk visits; its leaves a share each of about 1 / num_nodes.
    leaves = 400
    graph = Graph.from_edge_index(torch.stack([torch.zeros(leaves, dtype=torch.long), torch.arange(1, leaves + 1)]),
                                  leaves + 1, symmetrize=True)
    keep = SkipGram(graph, SkipGramSettings(dim=8)).keep_probability()
    assert torch.equal(keep, SkipGram(graph, SkipGramSettings(dim=8, subsample=1 / (leaves + 1))).keep_probability())
    frequency, t = 0.5, 1 / (leaves + 1)  # word2vec's rule for the hub
    assert keep[0].item() == pytest.approx(((frequency / t) ** 0.5 + 1) * t / frequency)
    assert bool((keep[1:] == 1).all())  # every leaf keeps every visit
    for bad in (-1e-4, float("nan"), True):
        with pytest.raises(ValueError, match="subsample"):
            SkipGram(graph, SkipGramSettings(dim=8, subsample=bad))


def reference_grouped_sgns(vertex, context, pairs, negative, lr):
    """Skip-gram SGD where consecutive pairs with one target form a group: every negative is
    ``negative``, and each group's rows move once, by gradients taken before the group."""
    start = 0
    while start < len(pairs):
        end = start
        while end < len(pairs) and pairs[end][1] == pairs[start][1]:
            end += 1
        target = pairs[start][1]
        outputs = [(target, 1.0)] + ([(negative, 0.0)] * 2 if negative != target else [])
        vertex_step, context_step = torch.zeros_like(vertex), torch.zeros_like(context)
        for source, _ in pairs[start:end]:
            for other, label in outputs:
                g = (label - torch.sigmoid(vertex[source] @ context[other])) * lr
                vertex_step[source] += g * context[other]
                context_step[other] += g * vertex[source]
        vertex += vertex_step
        context += context_step
        start = end


def test_sgns_trains_each_group_from_its_rows_before_the_group():
    gen = torch.Generator().manual_seed(0)
    vertex, context = torch.randn(8, 16, generator=gen) * 0.3, torch.randn(8, 16, generator=gen) * 0.3
    pairs = [(1, 0), (2, 0), (3, 0), (4, 5), (0, 5), (6, 7), (7, 6)]
    only_node_7 = ops.alias_table(torch.tensor([0, 0, 0, 0, 0, 0, 0, 1.0], dtype=torch.float64))
    initial = vertex.clone()
    expected_vertex, expected_context = vertex.clone(), context.clone()
    reference_grouped_sgns(expected_vertex, expected_context, pairs, 7, 0.05)
    ops.sgns_train(vertex, context, torch.tensor(pairs), only_node_7, negatives=2, lr=(0.05, 0.05), seed=3)
    # The trainer reads sigmoids from word2vec's 4096-entry table, hence the tolerance.
    torch.testing.assert_close(vertex, expected_vertex, rtol=0, atol=2e-4)
    torch.testing.assert_close(context, expected_context, rtol=0, atol=2e-4)
    assert (vertex - initial).abs().max() > 100 * 2e-4  # the comparison is not between untouched rows


def test_line_first_order_has_no_context_table():
    data = generate_synthetic(300, 3000, 4, 2, seed=0)
    settings = SkipGramSettings(method="line", line_order=1, dim=16, epochs=2)
    embeddings = SkipGram(data.graph, settings).fit(progress=False)
    assert embeddings.context is None and torch.isfinite(embeddings.vertex).all()


def test_sparse_projection_has_li_et_al_density_and_balanced_signs():
    n, dim = 10_000, 64
    projection = sparse_projection(n, dim, seed=5).to_dense()
    s = n ** 0.5
    values = projection[projection != 0]
    assert set(values.unique().tolist()) == {-(s ** 0.5), s ** 0.5}
    assert stats.binomtest(values.numel(), n * dim, 1 / s).pvalue > 1e-3
    assert stats.binomtest(int((values > 0).sum()), values.numel(), 0.5).pvalue > 1e-3
    per_column = (projection != 0).sum(0).numpy()  # every column as dense as the others
    assert stats.chisquare(per_column).pvalue > 1e-3
    assert torch.equal(projection, sparse_projection(n, dim, seed=5).to_dense())


@pytest.mark.parametrize("weighted", [False, True])
def test_fastrp_matches_a_dense_reference(weighted):
    graph = generate_synthetic(200, 1500, 4, 3, seed=0).graph
    row, col = graph.edge_index()
    edge_weight = torch.rand(row.numel(), generator=torch.Generator().manual_seed(1)) + 0.5 if weighted else None
    graph = Graph.from_edge_index(torch.stack([row, col]), 200, edge_weight=edge_weight)
    weights, beta = (0.5, 1.0, 2.0), -0.5
    ours = fastrp(graph, 64, weights=weights, beta=beta, normalize=True, seed=7)
    adjacency = torch.zeros(200, 200)
    adjacency[row, col] = edge_weight if weighted else 1.0
    # L re-weights by the edge count (unweighted degree), the transition by the weighted one.
    degree = (adjacency > 0).float().sum(1)
    transition = adjacency / adjacency.sum(1).clamp_min(1e-12)[:, None]
    scale = torch.where(degree > 0, (degree / graph.num_edges).pow(beta), torch.zeros(200))
    current = sparse_projection(200, 64, seed=7).to_dense() * scale[:, None]
    expected = torch.zeros(200, 64)
    for weight in weights:
        current = transition @ current
        expected += weight * torch.nn.functional.normalize(current, dim=1)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("suffix", [".txt", ".npy", ".npz", ".pt"])
def test_embedding_files_round_trip(tmp_path, suffix):
    # Eighths below 125: six significant digits hold them, so word2vec text round-trips them exactly too.
    gen = torch.Generator().manual_seed(0)
    vertex, context = (torch.randint(-999, 1000, (5, 3), generator=gen).float() / 8 for _ in range(2))
    original = Embeddings(vertex=vertex, context=context, names=np.array(["a", "b", "c", "d", "e"]))
    path = save_embeddings(original, tmp_path / f"emb{suffix}")  # by default without the context table
    loaded = load_embeddings(path)
    assert torch.equal(loaded.vertex, original.vertex) and loaded.context is None
    assert list(loaded.ids) == ["a", "b", "c", "d", "e"]
    assert not (tmp_path / f"emb.context{suffix}").exists()
    if suffix == ".txt":
        assert path.read_text().splitlines()[0] == "5 3"
    loaded = load_embeddings(save_embeddings(original, path, with_context=True))
    assert torch.equal(loaded.vertex, original.vertex) and torch.equal(loaded.context, original.context)
    assert list(loaded.ids) == ["a", "b", "c", "d", "e"]


def test_embed_command_end_to_end(tmp_path, capsys):
    data = generate_synthetic(400, 4000, 4, 2, homophily=0.95, seed=3)
    row, col = data.graph.edge_index()
    keep = row < col
    edges = tmp_path / "graph.csv"
    edges.write_text("".join(f"v{a},v{b}\n" for a, b in zip(row[keep].tolist(), col[keep].tolist())))
    output = tmp_path / "emb.txt"
    walks = ["--dim", "16", "--num-walks", "4", "--walk-length", "20", "--quiet"]
    assert main(["embed", "--input", str(edges), "--output", str(output)] + walks) == 0
    loaded = load_embeddings(output)
    nodes = {f"v{i}" for i in torch.cat([row[keep], col[keep]]).unique().tolist()}
    assert loaded.vertex.shape == (len(nodes), 16) and set(loaded.ids) == nodes
    assert loaded.context is None and not (tmp_path / "emb.context.txt").exists()  # only when asked
    assert main(["embed", "--input", str(edges), "--output", str(output), "--save-context"] + walks) == 0
    with_context = load_embeddings(output)
    assert with_context.context.shape == (len(nodes), 16) and list(with_context.ids) == list(loaded.ids)
    assert not torch.equal(with_context.context, with_context.vertex)  # skip-gram's second table
    # Warm start and a YAML config whose values the flags override.
    config = tmp_path / "run.yaml"
    config.write_text(f"input: {edges}\noutput: {tmp_path / 'fast.npz'}\nmethod: fastrp\ndim: 8\n")
    assert main(["embed", "--config", str(config), "--dim", "12", "--quiet"]) == 0
    assert load_embeddings(tmp_path / "fast.npz").vertex.shape == (len(nodes), 12)
    # save_context in the config, and a warm start from the context-less file
    config.write_text(f"input: {edges}\noutput: {tmp_path / 'line.pt'}\nmethod: line\nsave_context: true\n"
                      f"init: {tmp_path / 'fast.npz'}\ndim: 12\nepochs: 1\n")
    assert main(["embed", "--config", str(config), "--quiet"]) == 0
    assert load_embeddings(tmp_path / "line.pt").context.shape == (len(nodes), 12)


@pytest.mark.parametrize("method", [["--method", "fastrp"], ["--method", "line", "--line-order", "1"]])
def test_save_context_is_refused_before_training_a_method_without_one(tmp_path, capsys, method):
    edges, output = write_edges(tmp_path), tmp_path / "emb.npz"
    assert main(["embed", "--input", str(edges), "--output", str(output), "--save-context", "--quiet"] + method) == 2
    name = "fastrp" if method[1] == "fastrp" else "first-order LINE"
    assert f"gnnscale embed: error: save_context: {name} trains no context embeddings" in capsys.readouterr().err
    assert not output.exists()


def test_embed_reports_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\t2\n2\t3\tnot-a-weight\n")
    assert main(["embed", "--input", str(bad), "--output", str(tmp_path / "e.npy"), "--quiet"]) == 2
    assert "line 2" in capsys.readouterr().err
    good = tmp_path / "good.tsv"
    good.write_text("1\t2\n")
    assert main(["embed", "--input", str(good), "--output", str(tmp_path / "missing" / "e.npy")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["embed", "--input", str(good), "--output", str(tmp_path / "e.csv")]) == 2
    assert "unknown format" in capsys.readouterr().err
    loops = tmp_path / "loops.tsv"
    loops.write_text("1\t1\n")
    assert main(["embed", "--input", str(loops), "--output", str(tmp_path / "e.npy"), "--quiet"]) == 2
    assert "no edges" in capsys.readouterr().err


def test_embed_eval_scores_embeddings(data_root, tmp_path, capsys):
    from gnnscale import load_dataset

    blog = load_dataset("blogcatalog", root=data_root)
    path = save_embeddings(Embeddings(vertex=fastrp(blog.graph, 128)), tmp_path / "blog.npy")
    results = tmp_path / "scores.json"
    assert main(["embed-eval", "--embeddings", str(path), "--labels", "blogcatalog", "--root", str(data_root),
                 "--ratios", "0.1", "--repeats", "1", "--json", str(results)]) == 0
    out = capsys.readouterr().out
    assert "liblinear" in out and "micro-F1" in out
    import json

    micro = json.loads(results.read_text())["node_classification"]["0.1"]["micro_f1"]
    # 39 labels; predicting the most frequent labels scores about 0.17 at 10%.
    assert micro > 0.25
    with pytest.raises(SystemExit):
        main(["embed-eval", "--embeddings", str(path), "--labels", "blogcatalog", "--C", "0"])
    assert "--C must be a positive number or 'cv'" in capsys.readouterr().err


def test_cross_validated_regularisation_does_not_depend_on_embedding_scale():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 4
    vectors = torch.randn(400, 16, generator=gen) + 1.5 * torch.eye(4, 16)[labels]
    fixed = [node_classification(vectors * scale, labels, ratios=[0.5], repeats=2)[0.5]["micro_f1"]
             for scale in (1.0, 0.05)]
    tuned = [node_classification(vectors * scale, labels, ratios=[0.5], repeats=2, C="cv")[0.5]
             for scale in (1.0, 0.05)]
    assert fixed[1] < fixed[0] - 0.1  # C = 1 over-regularises the small vectors
    assert abs(tuned[1]["micro_f1"] - tuned[0]["micro_f1"]) < 0.03
    assert min(tuned[1]["C"]) > max(tuned[0]["C"])  # smaller vectors, weaker regularisation
    with pytest.raises(ValueError, match="C must be a positive number or 'cv'"):
        node_classification(vectors, labels, C=0)


PROJECT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "gnnscale", *map(str, args)], cwd=PROJECT, capture_output=True,
                          text=True, timeout=180)


def assert_refused(result, *messages):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for message in messages:
        assert message in result.stderr


def random_embeddings(tmp_path, rows, names=None, name="emb.npy"):
    vertex = torch.randn(rows, 8, generator=torch.Generator().manual_seed(0))
    return save_embeddings(Embeddings(vertex=vertex, names=names), tmp_path / name)


def test_embed_eval_refuses_embeddings_of_another_graph(data_root, tmp_path, capsys):
    blog_sized = random_embeddings(tmp_path, 10312)  # as many rows as BlogCatalog has nodes
    result = run_cli("embed-eval", "--embeddings", blog_sized, "--labels", "cora", "--root", data_root,
                     "--ratios", "0.5", "--repeats", "1")
    assert_refused(result, "10312 rows", "cora has 2708 nodes")
    assert "micro-F1" not in result.stdout
    renamed = random_embeddings(tmp_path, 2708, names=np.array([f"v{i}" for i in range(2708)]), name="named.npy")
    assert main(["embed-eval", "--embeddings", str(renamed), "--labels", "cora", "--root", str(data_root),
                 "--ratios", "0.5", "--repeats", "1"]) == 2
    assert "2708 nodes of cora have no embedding (for example ['0', '1'" in capsys.readouterr().err


def test_embed_eval_refuses_nonsensical_splits(data_root, tmp_path, capsys):
    cora_sized = random_embeddings(tmp_path, 2708)
    result = run_cli("embed-eval", "--embeddings", cora_sized, "--labels", "cora", "--root", data_root,
                     "--repeats", "0")
    assert_refused(result, "argument --repeats: must be a positive integer, got '0'")
    assert "nan" not in result.stdout
    for flag, value, message in (("--repeats", "-2", "argument --repeats: must be a positive integer"),
                                 ("--ratios", "0,0.5", "argument --ratios: must be comma-separated numbers "
                                                       "strictly between 0 and 1, got '0,0.5'"),
                                 ("--ratios", "0.5,1", "strictly between 0 and 1"),
                                 ("--ratios", "half", "strictly between 0 and 1")):
        with pytest.raises(SystemExit) as exit:
            main(["embed-eval", "--embeddings", str(cora_sized), "--labels", "cora", flag, value])
        assert exit.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        node_classification(torch.randn(10, 2), torch.arange(10) % 2, repeats=0)
    with pytest.raises(ValueError, match="leaves no training or no test nodes"):
        node_classification(torch.randn(10, 2), torch.arange(10) % 2, ratios=[0.01])


def write_edges(tmp_path):
    edges = tmp_path / "graph.tsv"
    edges.write_text("1\t2\n2\t3\n3\t1\n3\t4\n")
    return edges


def test_embed_config_errors_are_one_line(tmp_path, capsys):
    edges, output = write_edges(tmp_path), tmp_path / "emb.npy"
    broken = tmp_path / "broken.yaml"
    broken.write_text(f"input: {edges}\noutput: [{output}\ndim: 8\n")
    result = run_cli("embed", "--config", broken)
    assert_refused(result, f"config {broken}: not valid YAML", "at line 3")
    assert len(result.stderr.strip().splitlines()) == 1 and not output.exists()
    for text, message in (("0\n", "the top level must be a mapping of option: value, got a int"),
                          ("[]\n", "the top level must be a mapping of option: value, got a list"),
                          ("plain words\n", "the top level must be a mapping of option: value, got a str"),
                          ("dimm: 8\n", "unknown option 'dimm'"),
                          ("1: 8\n", "unknown option 1"),
                          ("dim: eight\n", "dim must be an integer, got 'eight'"),
                          ("lr: [0.1]\n", "lr must be a number, got [0.1]"),
                          ("quiet: 3\n", "quiet must be true or false, got 3"),
                          ("threads: -1\n", "threads must be a positive integer, got -1"),
                          ("threads: 0\n", "threads must be a positive integer, got 0")):
        config = tmp_path / "run.yaml"
        config.write_text(text)
        assert main(["embed", "--config", str(config), "--input", str(edges), "--output", str(output),
                     "--method", "fastrp", "--dim", "4", "--quiet"]) == 2
        assert f"gnnscale embed: error: config {config}: {message}" in capsys.readouterr().err
    assert not output.exists()


def test_embed_threads_must_be_positive(tmp_path, capsys):
    edges, output = write_edges(tmp_path), tmp_path / "emb.npy"
    result = run_cli("embed", "--input", edges, "--output", output, "--method", "fastrp", "--dim", "4",
                     "--threads", "-1")
    assert_refused(result, "argument --threads: must be a positive integer, got '-1'")
    with pytest.raises(SystemExit) as exit:
        main(["embed", "--input", str(edges), "--output", str(output), "--method", "fastrp", "--threads", "0"])
    assert exit.value.code == 2 and "argument --threads: must be a positive integer, got '0'" in capsys.readouterr().err
    assert not output.exists()


def test_node_names_with_spaces_survive_word2vec_text(tmp_path, capsys):
    names = ["alice smith", "bob jones", "carol", "dave x"]
    edges = tmp_path / "people.csv"
    edges.write_text("".join(f"{names[a]},{names[b]}\n" for a, b in ((0, 1), (1, 2), (2, 0), (2, 3), (3, 0))))
    output = tmp_path / "emb.txt"
    assert main(["embed", "--input", str(edges), "--output", str(output), "--method", "fastrp", "--dim", "4",
                 "--fastrp-weights", "1,1", "--quiet"]) == 0
    assert sorted(load_embeddings(output).ids) == names
    held_out = tmp_path / "held.csv"
    held_out.write_text("alice smith,dave x\n")
    result = run_cli("embed-eval", "--embeddings", output, "--held-out", held_out)
    assert result.returncode == 0, result.stderr
    assert "ROC-AUC" in result.stdout and "on 1 held-out edges" in result.stdout
