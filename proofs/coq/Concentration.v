(** * Concentration: the off-target softmax mass, uniformly in the image

    For the quadratic scores of Lemma 2, the softmax weight of key [k] is
    [exp (- alpha |k - t|^2) / sum_k' exp (- alpha |k' - t|^2)] with target
    [t = q + Delta].  For ANY finite set of integer keys (without repetition)
    that contains the target, the off-target mass is at most

      [leak alpha D = 1 - theta(alpha)^-D],
      [theta(alpha) = sum_(n in Z) exp (- alpha n^2)]

    (the value [bounds.leak_bound] of the Python package computes, as
    [1 - theta_3(e^-alpha)^-D]): the offsets [k - t] are distinct points of
    [Z^D], and the lattice sum over a box factorises into [D] copies of the
    one-dimensional sum.  [theta] is the supremum, and the limit, of the
    symmetric partial sums; the closed form [leak alpha D <= 2 D q / (1 - q)],
    [q = exp (- alpha)], follows, and with it [leak alpha D -> 0].

    Statements over an abstract [realType], with mathcomp-analysis's
    [expR]; they use the classical axioms of mathcomp-analysis. *)

From mathcomp Require Import all_ssreflect all_algebra ring.
From mathcomp Require Import boolp classical_sets reals exp.
From mathcomp Require Import topology normedtype sequences.
From AttnExpressivity Require Import Layers Lemma2.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Import numFieldNormedType.Exports.
Local Open Scope classical_set_scope.
Local Open Scope ring_scope.

(** ** Helpers on sums and exponentials *)

Section Helpers.
Variable R : realType.

Lemma expR_sum I (r : seq I) (P : pred I) (F : I -> R) :
  expR (\sum_(i <- r | P i) F i) = \prod_(i <- r | P i) expR (F i).
Proof. exact: (big_morph _ (@expRD R) (@expR0 R)). Qed.

(** A sum over a list without repetition is at most the sum over the
    whole finite type, for non-negative terms. *)
Lemma sum_uniq_le (T : finType) (s : seq T) (G : T -> R) :
  uniq s -> (forall x, 0 <= G x) -> \sum_(x <- s) G x <= \sum_x G x.
Proof.
move=> s_uniq G_ge0; rewrite big_uniq // [X in _ <= X](bigID (mem s)) /=.
by rewrite ler_addl sumr_ge0.
Qed.

(** The geometric sum: [sum_(i < n) q^i <= 1 / (1 - q)] for [0 <= q < 1]. *)
Lemma geometric_le (q : R) n : 0 <= q -> q < 1 -> \sum_(i < n) q ^+ i <= (1 - q)^-1.
Proof.
move=> q_ge0 q_lt1; have q1 : 0 < 1 - q by rewrite subr_gt0.
rewrite -[X in _ <= X]div1r ler_pdivl_mulr // mulrC -opprB mulNr -subrX1 opprB.
by rewrite ler_subl_addl ler_addr exprn_ge0.
Qed.

End Helpers.

(** ** The theta function *)

Section Theta.
Variable R : realType.
Implicit Types (alpha : R) (N : nat).

(** One term: [exp (- alpha n^2)]. *)
Definition gauss1 alpha (n : int) : R := expR (- alpha * (n%:~R) ^+ 2).

(** The symmetric partial sum [sum_(|n| <= N) exp (- alpha n^2)]. *)
Definition theta_partial alpha N : R :=
  \sum_(0 <= i < N.*2.+1) gauss1 alpha (i%:Z - N%:Z).

(** [theta alpha = sum_(n in Z) exp (- alpha n^2)], the supremum of the
    partial sums (and their limit, [theta_cvg]). *)
Definition theta alpha : R := sup (range (theta_partial alpha)).

(** The leak bound of [bounds.leak_bound]: [1 - theta(alpha)^-D]. *)
Definition leak alpha (D : nat) : R := 1 - (theta alpha ^+ D)^-1.

Lemma gauss1_ge0 alpha n : 0 <= gauss1 alpha n.
Proof. exact/ltW/expR_gt0. Qed.

Lemma gauss1N alpha n : gauss1 alpha (- n) = gauss1 alpha n.
Proof. by rewrite /gauss1 mulrNz sqrrN. Qed.

Lemma gauss10 alpha : gauss1 alpha 0 = 1.
Proof. by rewrite /gauss1 mulr0z expr0n /= mulr0 expR0. Qed.

(** [theta_N = 1 + 2 sum_(n = 1..N) exp (- alpha n^2)]. *)
Lemma theta_partialE alpha N :
  theta_partial alpha N = 1 + 2%:R * \sum_(n < N) gauss1 alpha n.+1%:Z.
Proof.
elim: N => [|N IH]; first by rewrite /theta_partial big_nat1 subrr gauss10 big_ord0 mulr0 addr0.
rewrite /theta_partial doubleS big_nat_recl // big_nat_recr //=.
have -> : \sum_(0 <= i < N.*2.+1) gauss1 alpha (i.+1%:Z - N.+1%:Z) = theta_partial alpha N.
  by apply: eq_bigr => i _; rewrite !intS opprD addrACA subrr add0r.
rewrite IH big_ord_recr /= sub0r gauss1N.
have -> : (N.*2.+2)%:Z - N.+1%:Z = N.+1%:Z.
  by rewrite -addnn -addSn -addnS PoszD addrK.
by rewrite mulrDr; ring.
Qed.

Lemma theta_partial_ge1 alpha N : 1 <= theta_partial alpha N.
Proof.
by rewrite theta_partialE ler_addl mulr_ge0 ?ler0n ?sumr_ge0 // => i _; apply: gauss1_ge0.
Qed.

Lemma theta_partial_homo alpha : {homo theta_partial alpha : N M / (N <= M)%N >-> N <= M}.
Proof.
move=> N M NM; rewrite !theta_partialE ler_add2l ler_pmul2l ?ltr0n //.
rewrite -!(big_mkord xpredT (fun n => gauss1 alpha n.+1%:Z)) (big_cat_nat _ _ _ (leq0n N) NM) /=.
by rewrite ler_addl sumr_ge0 // => i _; apply: gauss1_ge0.
Qed.

(** [exp (- alpha n^2) <= q^n] with [q = exp (- alpha)], for [alpha > 0]. *)
Lemma gauss1_le_geometric alpha (n : nat) :
  0 < alpha -> gauss1 alpha n%:Z <= expR (- alpha) ^+ n.
Proof.
move=> a_gt0; rewrite /gauss1 -expRMm ler_expR pmulrn mulNr mulrN ler_opp2 mulrC.
rewrite ler_pmul2l //; case: n => [|n]; first by rewrite expr0n.
by rewrite expr2 ler_pemulr ?ler0n // ler1n.
Qed.

(** The closed-form upper bound: [theta_N <= 1 + 2 q / (1 - q)]. *)
Definition theta_closed alpha : R :=
  1 + 2%:R * (expR (- alpha) / (1 - expR (- alpha))).

Lemma theta_partial_le alpha N : 0 < alpha -> theta_partial alpha N <= theta_closed alpha.
Proof.
move=> a_gt0; rewrite theta_partialE ler_add2l ler_pmul2l ?ltr0n //.
have q_ge0 : 0 <= expR (- alpha) := ltW (expR_gt0 _).
have q_lt1 : expR (- alpha) < 1 by rewrite expR_lt1 oppr_lt0.
apply: le_trans (_ : \sum_(n < N) expR (- alpha) ^+ n.+1 <= _).
  by apply: ler_sum => n _; apply: gauss1_le_geometric.
under eq_bigr do rewrite exprS; rewrite -mulr_sumr.
by rewrite ler_pmul2l ?expR_gt0 ?geometric_le.
Qed.

Lemma theta_has_ubound alpha : 0 < alpha -> has_ubound (range (theta_partial alpha)).
Proof. by move=> a_gt0; exists (theta_closed alpha) => _ [N _ <-]; apply: theta_partial_le. Qed.

Lemma theta_partial_le_theta alpha N : 0 < alpha -> theta_partial alpha N <= theta alpha.
Proof. by move=> a_gt0; apply: sup_ub (theta_has_ubound a_gt0) _ _; exists N. Qed.

Lemma theta_ge1 alpha : 0 < alpha -> 1 <= theta alpha.
Proof.
move=> a_gt0.
exact: le_trans (theta_partial_ge1 alpha 0) (theta_partial_le_theta 0 a_gt0).
Qed.

Lemma theta_le_closed alpha : 0 < alpha -> theta alpha <= theta_closed alpha.
Proof.
move=> a_gt0; apply: sup_le_ub; first by exists (theta_partial alpha 0), 0%N.
by move=> _ [N _ <-]; apply: theta_partial_le.
Qed.

(** [theta] is the sum of the series: the partial sums converge to it. *)
Lemma theta_cvg alpha : 0 < alpha -> theta_partial alpha --> theta alpha.
Proof.
move=> a_gt0; apply: nondecreasing_cvg; first exact: theta_partial_homo.
exact: theta_has_ubound.
Qed.

(** ** The leak *)

Lemma leak_ge0 alpha D : 0 < alpha -> 0 <= leak alpha D.
Proof.
move=> a_gt0; have t1 := theta_ge1 a_gt0.
by rewrite subr_ge0 invf_le1 ?exprn_ege1 // exprn_gt0 // (lt_le_trans ltr01).
Qed.

(** [1 - theta^-D <= D (theta - 1)]. *)
Lemma leak_le_theta alpha D : 0 < alpha -> leak alpha D <= D%:R * (theta alpha - 1).
Proof.
move=> a_gt0; have t1 := theta_ge1 a_gt0; have t0 : 0 < theta alpha := lt_le_trans ltr01 t1.
set y := (theta alpha)^-1; have y0 : 0 <= y by rewrite invr_ge0 ltW.
have y1 : y <= 1 by rewrite invf_le1.
rewrite /leak -exprVn -/y -opprB subrX1 -mulNr opprB mulrC.
apply: le_trans (_ : D%:R * (1 - y) <= _).
  rewrite ler_wpmul2r ?subr_ge0 //; apply: le_trans (_ : \sum_(i < D) (1 : R) <= _).
    by apply: ler_sum => i _; apply: exprn_ile1.
  by rewrite sumr_const card_ord.
have -> : 1 - y = (theta alpha - 1) * y by rewrite mulrBl mul1r mulfV ?gt_eqF.
by rewrite ler_wpmul2l ?ler0n // -[X in _ <= X]mulr1 ler_wpmul2l ?subr_ge0.
Qed.

(** The closed form: [leak alpha D <= 2 D q / (1 - q)], [q = exp (- alpha)]. *)
Lemma leak_le_closed alpha D : 0 < alpha ->
  leak alpha D <= D%:R * (2%:R * (expR (- alpha) / (1 - expR (- alpha)))).
Proof.
move=> a_gt0; apply: le_trans (leak_le_theta D a_gt0) _.
by rewrite ler_wpmul2l ?ler0n // ler_subl_addl theta_le_closed.
Qed.

(** [leak alpha D] is as small as one wants for [alpha] large enough. *)
Lemma leak_small (D : nat) (eps : R) :
  0 < eps -> exists A : R, 0 <= A /\ forall alpha, A < alpha -> leak alpha D <= eps.
Proof.
move=> eps_gt0; pose c : R := 4%:R * D%:R; have c_ge0 : 0 <= c by rewrite mulr_ge0 ?ler0n.
pose d : R := Num.min 2^-1 (eps / (c + 1)).
have cp : 0 < c + 1 := ltr_paddl c_ge0 ltr01.
have d_gt0 : 0 < d by rewrite /d lt_minr invr_gt0 ltr0n /= divr_gt0.
have [y yE] := expR_total d_gt0.
exists (Num.max 0 (- y)); split=> [|alpha]; first by rewrite le_maxr lexx.
rewrite lt_maxl => /andP[a_gt0 ya]; set q := expR (- alpha).
have q_gt0 : 0 < q := expR_gt0 _.
have q_lt_d : q < d by rewrite /q -yE ltr_expR ltr_oppl.
have q_half : q <= 2^-1 by apply: ltW (lt_le_trans q_lt_d _); rewrite le_minl lexx.
have q1 : 0 < 1 - q by rewrite subr_gt0 (le_lt_trans q_half) // invf_lt1 ?ltr0n // ltr1n.
apply: le_trans (leak_le_closed D a_gt0) _; rewrite -/q.
apply: le_trans (_ : c * q <= _).
  have -> : c * q = D%:R * (2%:R * (2%:R * q)) by rewrite /c; ring.
  rewrite ler_wpmul2l ?ler0n // ler_pmul2l ?ltr0n // ler_pdivr_mulr // -subr_ge0.
  have -> : 2%:R * q * (1 - q) - q = q * (1 - 2%:R * q) by ring.
  by rewrite mulr_ge0 ?(ltW q_gt0) // subr_ge0 -ler_pdivl_mull ?ltr0n // mulr1.
apply: le_trans (_ : c * (eps / (c + 1)) <= _).
  by rewrite ler_wpmul2l // ltW // (lt_le_trans q_lt_d) // le_minl lexx orbT.
by rewrite mulrA ler_pdivr_mulr // mulrDr mulr1 mulrC ler_addl ltW.
Qed.

(** And tends to 0 as [alpha -> +oo]. *)
Lemma leak_cvg0 (D : nat) : (fun alpha => leak alpha D) @ +oo --> (0 : R).
Proof.
apply/cvgrPdist_le => eps eps_gt0; have [A [A_ge0 leA]] := leak_small D eps_gt0.
exists A; split; first exact: num_real.
move=> alpha A_alpha; rewrite sub0r normrN ger0_norm ?leA //.
exact/leak_ge0/(le_lt_trans A_ge0).
Qed.

End Theta.

(** ** Concentration *)

Section Concentration.
Variables (R : realType) (D : nat).

Lemma sqnorm_posR (z : pos D) : sqnorm (posR R z) = \sum_(a < D) ((z 0 a)%:~R) ^+ 2.
Proof. by apply: eq_bigr => a _; rewrite !mxE expr2. Qed.

(** The lattice sum over the offsets of distinct integer keys from [t] is at
    most [theta_N^D], for [N] at least every coordinate of every offset. *)
Lemma sum_gauss_box (alpha : R) (keys : seq (pos D)) (t : pos D) (N : nat) :
  uniq keys ->
  (forall (k : pos D) (a : 'I_D), k \in keys -> leq (absz ((k - t : pos D) 0 a)) N) ->
  \sum_(k <- keys) expR (- alpha * sqnorm (posR R (k - t)))
    <= theta_partial alpha N ^+ D.
Proof.
move=> k_uniq k_le.
pose G (f : {ffun 'I_D -> 'I_N.*2.+1}) := \prod_(a < D) gauss1 alpha ((f a)%:Z - N%:Z).
pose enc (k : pos D) : {ffun 'I_D -> 'I_N.*2.+1} :=
  [ffun a => inord (absz ((k - t) 0 a + N%:Z))].
have encE k a : k \in keys -> (enc k a)%:Z - N%:Z = (k - t) 0 a.
  move=> k_in; set z := (k - t) 0 a.
  have /andP[z_ge z_le] : - N%:Z <= z <= N%:Z by rewrite -ler_norml -abszE lez_nat k_le.
  have zN : 0 <= z + N%:Z by rewrite -ler_subl_addr sub0r.
  rewrite ffunE inordK ?gez0_abs ?addrK // -ltz_nat gez0_abs //.
  by rewrite -[N.*2.+1]addn1 PoszD ltz_addr1 -addnn PoszD ler_add2r.
have GE k : k \in keys -> expR (- alpha * sqnorm (posR R (k - t))) = G (enc k).
  move=> k_in; rewrite sqnorm_posR mulr_sumr expR_sum.
  by apply: eq_bigr => a _; rewrite encE.
rewrite (eq_big_seq _ GE) -(big_map enc xpredT G).
apply: le_trans (sum_uniq_le _ _) _.
- rewrite map_inj_in_uniq // => k1 k2 k1_in k2_in eq12.
  apply/rowP => a; have := encE _ a k1_in; rewrite eq12 encE // !mxE.
  by move/addIr->.
- by move=> f; apply: prodr_ge0 => a _; apply: gauss1_ge0.
rewrite /G -(bigA_distr_bigA (fun _ (j : 'I_N.*2.+1) => gauss1 alpha (j%:Z - N%:Z))) /=.
by rewrite prodr_const card_ord /theta_partial big_mkord.
Qed.

(** The softmax of the quadratic score centred on the target [t]. *)
Definition gauss_softmax (alpha : R) (keys : seq (pos D)) (t : pos D) : pos D -> R :=
  softmax expR keys (fun k => - alpha * sqnorm (posR R (k - t))).

Theorem concentration (alpha : R) (keys : seq (pos D)) (t : pos D)
    (Halpha : 0 < alpha) (Hkeys : uniq keys) (Ht : t \in keys) :
  \sum_(k <- keys | k != t) gauss_softmax alpha keys t k <= leak alpha D.
Proof.
set s := fun k => - alpha * sqnorm (posR R (k - t)).
set Z := \sum_(k <- keys) expR (s k).
have st : expR (s t) = 1.
  rewrite /s subrr /sqnorm /dotr big1 ?mulr0 ?expR0 // => a _.
  by rewrite !mxE mul0r.
have ZE : Z = 1 + \sum_(k <- keys | k != t) expR (s k) by rewrite /Z (bigD1_seq t) //= st.
have Z_ge1 : 1 <= Z by rewrite ZE ler_addl sumr_ge0 // => k _; apply/ltW/expR_gt0.
have Z_gt0 : 0 < Z := lt_le_trans ltr01 Z_ge1.
rewrite /gauss_softmax /softmax -/s -/Z -mulr_suml.
have -> : \sum_(k <- keys | k != t) expR (s k) = Z - 1 by rewrite ZE [RHS]addrAC subrr add0r.
rewrite mulrBl mulfV ?gt_eqF // mul1r /leak ler_add2l ler_opp2.
have t1 := theta_ge1 Halpha.
rewrite lef_pinv ?posrE ?exprn_gt0 ?(lt_le_trans ltr01) //.
pose N := (\sum_(k <- keys) \sum_(a < D) absz (((k - t)%R : pos D) ord0 a))%N.

apply: le_trans (sum_gauss_box alpha (N := N) Hkeys _) _.
  move=> k a k_in; rewrite /N (big_rem k) //= (bigD1 a) //= -addnA leq_addr //.
rewrite ler_expn2r ?nnegrE ?theta_partial_le_theta //.
  exact: le_trans ler01 (theta_partial_ge1 _ _).
exact: le_trans ler01 t1.
Qed.

(** The same as a lower bound on the target's weight. *)
Corollary concentration_target (alpha : R) (keys : seq (pos D)) (t : pos D)
    (Halpha : 0 < alpha) (Hkeys : uniq keys) (Ht : t \in keys) :
  1 - gauss_softmax alpha keys t t <= leak alpha D.
Proof.
have sum1 : \sum_(k <- keys) gauss_softmax alpha keys t k = 1.
  rewrite /gauss_softmax /softmax -mulr_suml mulfV // gt_eqF //.
  rewrite (bigD1_seq t) //= ltr_paddr ?sumr_ge0 ?expR_gt0 // => k _.
  exact/ltW/expR_gt0.
move: sum1; rewrite (bigD1_seq t) //= => sum1.
by rewrite -{1}sum1 addrAC subrr add0r concentration.
Qed.

End Concentration.
