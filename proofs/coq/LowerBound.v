(** * Theorem 1 is tight: fewer heads than the rank of the kernel's unfolding
      cannot express the convolution.

    Notation (docs/lower_bound.md). A layer maps an input [X : 'M_(ni, di)]
    ([ni] input pixels, [di] channels) to an output ['M_(no, dout)].
    A convolution is [X |-> \sum_d S d *m X *m W d + b]: [S d] is the 0/1
    shift matrix of kernel index [d] (output [o] reads pixel [p]) and [W d] the
    kernel slice. An attention layer with [nh] heads is
    [X |-> \sum_h Att h X *m X *m M h + b'], [Att h X] the attention weights of
    head [h] (pad, attend, crop included) and [M h = W_val^(h) W_out^(h)].
    [unfold_rows A] is the matrix whose rows are [mxvec (A i)]; for the kernel
    slices it is U(W), and r(W) is its rank.

    - [heads_ge_rank]: if [\sum_h P h (x) M h = \sum_d S d (x) W d] (as
      four-index tensors) and the [S d] are linearly independent, then
      [\rank U(W) <= nh]. Any field; no axiom.
    - [unfold_rows_free], [shift_mx_free]: disjoint non-empty supports (shift
      matrices: each output reads a given pixel through one tap at most, and
      each tap is used by some output) give linear independence. No axiom.
    - [linearisation]: if the attention weights are continuous at [X = 0]
      along every line and the layer equals the convolution for every [X], then
      [\sum_h Att h 0 *m E *m M h = \sum_d S d *m E *m W d] for every [E]
      (the derivatives at 0 agree). Real numbers (mathcomp-analysis).
    - [attention_needs_rank_heads]: the two together.
    - [conv1_attention_needs_rank_heads]: the hypotheses met by a 1-D
      convolution with stride, dilation and zero padding on an image on which
      every tap is used by some output.

    Not mechanised: that the softmax of the paper's four-term score is
    continuous in X (an assumption here, [continuous_at_zero]), the N-D shift
    matrices (the 1-D ones are), the other padding modes, and the quantitative
    Eckart-Young bound (checked numerically in the Python package). *)

From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp.classical Require Import boolp classical_sets.
From mathcomp Require Import reals topology normedtype.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory numFieldTopology.Exports numFieldNormedType.Exports.
Local Open Scope ring_scope.

(** ** The rank bound: any field, no axiom *)

Section RankBound.

Variable F : fieldType.

(** The matrix whose rows are the vectorised [A i]. *)
Definition unfold_rows k m n (A : 'I_k -> 'M[F]_(m, n)) : 'M[F]_(k, m * n) :=
  \matrix_(i, j) mxvec (A i) 0 j.

Lemma unfold_rowsE k m n (A : 'I_k -> 'M[F]_(m, n)) i a b :
  unfold_rows A i (mxvec_index a b) = A i a b.
Proof. by rewrite mxE mxvecE. Qed.

(** Non-zero matrices with disjoint supports are linearly independent. *)
Lemma unfold_rows_free s m n (S : 'I_s -> 'M[F]_(m, n)) :
  (forall d, S d != 0) ->
  (forall d d' o p, d != d' -> S d o p != 0 -> S d' o p = 0) ->
  row_free (unfold_rows S).
Proof.
move=> Hnz Hdisj; rewrite -kermx_eq0; apply/eqP.
set K := kermx _; have KS : K *m unfold_rows S = 0 := mulmx_ker _.
apply/matrixP => r d; rewrite [RHS]mxE.
have /matrix0Pn [o [p Hop]] := Hnz d.
have := congr1 (fun X : 'M_(s, m * n) => X r (mxvec_index o p)) KS.
rewrite [LHS]mxE [RHS]mxE (bigD1 d) //= big1 => [|d' Hd']; last first.
  by rewrite unfold_rowsE (Hdisj d d') ?mulr0 // eq_sym.
by rewrite unfold_rowsE addr0 => /eqP; rewrite mulf_eq0 (negbTE Hop) orbF => /eqP.
Qed.

(** Shift matrices: [tap d o = Some p] when output [o] reads input pixel [p]
    through kernel index [d] ([None]: a zero of the padding). *)
Definition shift_mx s no ni (tap : 'I_s -> 'I_no -> option 'I_ni) d : 'M[F]_(no, ni) :=
  \matrix_(o, p) (tap d o == Some p)%:R.

Lemma shift_mx_free s no ni (tap : 'I_s -> 'I_no -> option 'I_ni) :
  (forall o d d' p, tap d o = Some p -> tap d' o = Some p -> d = d') ->
  (forall d, exists o, tap d o != None) ->
  row_free (unfold_rows (shift_mx tap)).
Proof.
move=> Hinj Hseen; apply: unfold_rows_free => [d|d d' o p dd'].
  have [o] := Hseen d; case Hp: (tap d o) => [p|] // _.
  by apply/matrix0Pn; exists o, p; rewrite mxE Hp eqxx oner_neq0.
rewrite !mxE; case: (tap d o =P Some p) => [Hd _|_]; last by rewrite /= mulr0n eqxx.
case: (tap d' o =P Some p) => [Hd'|_]; last by rewrite /= mulr0n.
by move: dd'; rewrite (Hinj o d d' p Hd Hd') eqxx.
Qed.

(** The positional-heads statement: [nh] heads, [P h (x) M h] summing to the
    convolution's [S d (x) W d] with independent [S d], need [nh >= r(W)]. *)
Theorem heads_ge_rank nh s no ni di dout
    (P : 'I_nh -> 'M[F]_(no, ni)) (M : 'I_nh -> 'M[F]_(di, dout))
    (S : 'I_s -> 'M[F]_(no, ni)) (W : 'I_s -> 'M[F]_(di, dout)) :
  row_free (unfold_rows S) ->
  (forall o p c c', \sum_(h < nh) P h o p * M h c c' = \sum_(d < s) S d o p * W d c c') ->
  (\rank (unfold_rows W) <= nh)%N.
Proof.
move=> Sfree Heq.
(* the rearrangement A (x) B |-> vec(A) vec(B)^T, applied to both sides *)
have E : (unfold_rows P)^T *m unfold_rows M = (unfold_rows S)^T *m unfold_rows W.
  apply/matrixP => k l.
  case/mxvec_indexP: k => o p; case/mxvec_indexP: l => c c'.
  rewrite !mxE; transitivity (\sum_(h < nh) P h o p * M h c c').
    by apply: eq_bigr => h _; rewrite !mxE !mxvecE.
  by rewrite Heq; apply: eq_bigr => d _; rewrite !mxE !mxvecE.
(* rank U(W) = rank (S^T U(W)) as S^T is injective; <= rank P^T <= nh *)
rewrite -mxrank_tr -(mxrankMfree _ Sfree) -[unfold_rows S in X in \rank X]trmxK.
rewrite -trmx_mul mxrank_tr -E.
by rewrite (leq_trans (mxrankM_maxl _ _)) // mxrank_tr rank_leq_row.
Qed.

End RankBound.

(** ** The linearisation at X = 0: real numbers *)

Section Linearisation.

Local Open Scope classical_set_scope.

Variable R : realType.

(** A function continuous at 0 and constant off 0 takes that constant at 0. *)
Lemma punctured_const (f : R -> R) (c : R) :
  {for (0 : R), continuous f} -> (forall t, t != 0 -> f t = c) -> f 0 = c.
Proof.
move=> fc fE.
have L1 : f @ (0 : R)^' --> f 0 by apply: cvg_within_filter.
have L2 : f @ (0 : R)^' --> c.
  apply: cvg_near_cst; rewrite /dnbhs near_withinE; apply: nearW => t /= t0.
  exact: fE.
exact: (@cvg_unique _ (@Rhausdorff R) _ _ (f 0) c L1 L2).
Qed.

Lemma cvg_sum_ord (T : Type) (G : set (set T)) {GG : Filter G} n
    (f : 'I_n -> T -> R) (a : 'I_n -> R) :
  (forall i, f i @ G --> a i) ->
  (fun x => \sum_(i < n) f i x) @ G --> \sum_(i < n) a i.
Proof.
elim: n f a => [|n IH] f a fa.
  have -> : (fun x => \sum_(i < 0) f i x) = fun=> 0 by apply: funext => x; rewrite big_ord0.
  by rewrite big_ord0; apply: cvg_cst.
have -> : (fun x => \sum_(i < n.+1) f i x) =
    (fun x => \sum_(i < n) f (widen_ord (leqnSn n) i) x + f ord_max x).
  by apply: funext => x; rewrite big_ord_recr.
rewrite big_ord_recr; apply: cvgD; last exact: fa.
exact: (IH (fun i => f (widen_ord (leqnSn n) i)) (fun i => a (widen_ord (leqnSn n) i))).
Qed.

Variables (nh s no ni di dout : nat).
(** The attention weights of each head as a function of the input. *)
Variable Att : 'I_nh -> 'M[R]_(ni, di) -> 'M[R]_(no, ni).
Variables (M : 'I_nh -> 'M[R]_(di, dout)) (b' : 'M[R]_(no, dout)).
Variables (S : 'I_s -> 'M[R]_(no, ni)) (W : 'I_s -> 'M[R]_(di, dout)) (b : 'M[R]_(no, dout)).

Definition mhsa (X : 'M[R]_(ni, di)) := \sum_(h < nh) Att h X *m X *m M h + b'.
Definition convolution (X : 'M[R]_(ni, di)) := \sum_(d < s) S d *m X *m W d + b.

(** Continuity of the weights at X = 0 along every line (the softmax of the
    four-term score is continuous in X; so is any positional head). *)
Definition continuous_at_zero :=
  forall h E o p, {for (0 : R), continuous (fun t : R => Att h (t *: E) o p)}.

Lemma scale_heads (t : R) E :
  \sum_(h < nh) Att h (t *: E) *m (t *: E) *m M h =
  t *: \sum_(h < nh) Att h (t *: E) *m E *m M h.
Proof. by rewrite scaler_sumr; apply: eq_bigr => h _; rewrite -scalemxAr -scalemxAl. Qed.

Lemma scale_shifts (t : R) E :
  \sum_(d < s) S d *m (t *: E) *m W d = t *: \sum_(d < s) S d *m E *m W d.
Proof. by rewrite scaler_sumr; apply: eq_bigr => d _; rewrite -scalemxAr -scalemxAl. Qed.

(** Equal maps have equal derivatives at 0: the content terms drop out. *)
Theorem linearisation :
  continuous_at_zero -> (forall X, mhsa X = convolution X) ->
  forall E, \sum_(h < nh) Att h 0 *m E *m M h = \sum_(d < s) S d *m E *m W d.
Proof.
move=> Hcont Heq E.
have bb : b' = b.
  have := Heq 0; rewrite /mhsa /convolution !big1 ?add0r // => [d|h] _.
    by rewrite mulmx0 mul0mx.
  by rewrite mulmx0 mul0mx.
have Ht t : t != 0 ->
    \sum_(h < nh) Att h (t *: E) *m E *m M h = \sum_(d < s) S d *m E *m W d.
  move=> t0; have := Heq (t *: E); rewrite /mhsa /convolution bb => /addIr.
  by rewrite scale_heads scale_shifts => /(scalerI t0).
apply/matrixP => o c.
pose f t := (\sum_(h < nh) Att h (t *: E) *m E *m M h) o c.
have -> : (\sum_(h < nh) Att h 0 *m E *m M h) o c = f 0 by rewrite /f scale0r.
apply: punctured_const => [|t t0]; last by rewrite /f Ht.
have -> : f = fun t => \sum_(h < nh) \sum_(j < di)
    (\sum_(p < ni) Att h (t *: E) o p * E p j) * M h j c.
  by apply: funext => t; rewrite /f summxE; apply: eq_bigr => h _;
     rewrite mxE; apply: eq_bigr => j _; rewrite mxE.
apply: (cvg_sum_ord (G := nbhs (0 : R))) => h.
apply: (cvg_sum_ord (G := nbhs (0 : R))) => j; apply: cvgMl.
by apply: (cvg_sum_ord (G := nbhs (0 : R))) => p; apply: cvgMl; apply: Hcont.
Qed.

Lemma delta_entry m n q r (A : 'M[R]_(m, n)) (B : 'M[R]_(q, r)) o p j c :
  (A *m delta_mx p j *m B) o c = A o p * B j c.
Proof.
rewrite mxE (bigD1 j) //= big1 => [|k kj]; last first.
  by rewrite mxE big1 ?mul0r // => l _; rewrite mxE (negbTE kj) andbF mulr0.
rewrite addr0 mxE (bigD1 p) //= big1 => [|l lp]; last by rewrite mxE (negbTE lp) mulr0.
by rewrite mxE !eqxx mulr1 addr0.
Qed.

(** Theorem: an attention layer whose weights are continuous at 0 and that
    equals the convolution for every input has at least r(W) heads, when the
    shift matrices are linearly independent. *)
Theorem attention_needs_rank_heads :
  row_free (unfold_rows S) -> continuous_at_zero ->
  (forall X, mhsa X = convolution X) ->
  (\rank (unfold_rows W) <= nh)%N.
Proof.
move=> Sfree Hcont Heq; apply: (heads_ge_rank (P := fun h => Att h 0) (M := M) (S := S)) => // o p c c'.
transitivity (\sum_(h < nh) (Att h 0 *m delta_mx p c *m M h) o c').
  by apply: eq_bigr => h _; rewrite delta_entry.
rewrite -summxE (linearisation Hcont Heq (delta_mx p c)) summxE.
by apply: eq_bigr => d _; rewrite delta_entry.
Qed.

End Linearisation.

(** ** An instance: 1-D convolution with stride, dilation and zero padding

    Output [o] reads the padded pixel [o * st + d * dl] through kernel index
    [d], the input pixel [o * st + d * dl - lo] when it lies in the image, a
    zero of the padding otherwise. Distinct taps read distinct pixels at each
    output, so the theorem applies as soon as every tap is used by some output
    (an image large enough for every shift to be seen). *)

Section Conv1.

Variables (st dl lo s no ni : nat).

Definition conv_tap (d : 'I_s) (o : 'I_no) : option 'I_ni :=
  if (lo <= o * st + d * dl)%N then insub (o * st + d * dl - lo)%N else None.

Lemma conv_tap_inj : (0 < dl)%N -> forall o (d d' : 'I_s) (p : 'I_ni),
  conv_tap d o = Some p -> conv_tap d' o = Some p -> d = d'.
Proof.
move=> Hdl o d d' p; rewrite /conv_tap.
case: ifP => // H1; case: insubP => // q _ qE [Eq].
case: ifP => // H2; case: insubP => // q' _ q'E [Eq'].
apply: ord_inj; apply/eqP; rewrite -(@eqn_pmul2r dl _ _ Hdl) -(eqn_add2l (o * st)).
by rewrite -(subnKC H1) -(subnKC H2) -qE -q'E Eq Eq'.
Qed.

Theorem conv1_attention_needs_rank_heads (R : realType) nh di dout
    (Att : 'I_nh -> 'M[R]_(ni, di) -> 'M[R]_(no, ni)) (M : 'I_nh -> 'M[R]_(di, dout))
    (b' : 'M[R]_(no, dout)) (W : 'I_s -> 'M[R]_(di, dout)) (b : 'M[R]_(no, dout)) :
  (0 < dl)%N -> (forall d, exists o, conv_tap d o != None) ->
  continuous_at_zero Att ->
  (forall X, mhsa Att M b' X = convolution (shift_mx R conv_tap) W b X) ->
  (\rank (unfold_rows W) <= nh)%N.
Proof.
move=> Hdl Hseen Hcont; apply: attention_needs_rank_heads => //.
exact: shift_mx_free (conv_tap_inj Hdl) Hseen.
Qed.

End Conv1.
