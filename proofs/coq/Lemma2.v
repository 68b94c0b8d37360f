(** * Lemma 2: the quadratic relative encoding

    The paper's Lemma 2 (Section 3.1): with [W_qry = W_key = 0],
    [W_keyhat = I], [r_delta = (|delta|^2, delta)] and
    [v = - alpha (1, - 2 Delta)], the score is
    [v . r_delta = - alpha (|delta - Delta|^2 - |Delta|^2)]; the constant
    [alpha |Delta|^2] does not depend on the key, and softmax ignores it.
    Also the appendix's generalised (anisotropic) encoding in 2-D:
    [r_delta = (delta_1, delta_2, delta_1^2, delta_2^2, delta_1 delta_2)]
    and a head vector read off a symmetric [Lambda = Sigma^-1] give
    [- 1/2 (delta - Delta) Lambda (delta - Delta)^T] up to a constant.

    The identities hold over any commutative ring (any field of
    characteristic 0 for the [1/2]), for any [D]; the softmax statements
    for any exponential [e] ([e (x + y) = e x * e y], [e x != 0]).
    No axiom is used. *)

From mathcomp Require Import all_ssreflect all_algebra ring.
From AttnExpressivity Require Import Layers.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Local Open Scope ring_scope.

(** ** Dot products *)

Section Dot.
Variables (R : comRingType) (n : nat).
Implicit Types x y z : 'rV[R]_n.

Lemma dotrC x y : dotr x y = dotr y x.
Proof. by apply: eq_bigr => i _; rewrite mulrC. Qed.

Lemma dotrDr x y z : dotr x (y + z) = dotr x y + dotr x z.
Proof. by rewrite /dotr -big_split; apply: eq_bigr => i _; rewrite mxE mulrDr. Qed.

Lemma dotrNr x y : dotr x (- y) = - dotr x y.
Proof. by rewrite /dotr -sumrN; apply: eq_bigr => i _; rewrite mxE mulrN. Qed.

Lemma dotrNl x y : dotr (- x) y = - dotr x y.
Proof. by rewrite dotrC dotrNr dotrC. Qed.

Lemma sqnormN x : sqnorm (- x) = sqnorm x.
Proof. by rewrite /sqnorm dotrNl dotrNr opprK. Qed.

Lemma dotrBr x y z : dotr x (y - z) = dotr x y - dotr x z.
Proof. by rewrite dotrDr dotrNr. Qed.

Lemma dotrZr a x y : dotr x (a *: y) = a * dotr x y.
Proof. by rewrite /dotr mulr_sumr; apply: eq_bigr => i _; rewrite mxE mulrCA. Qed.

Lemma dotrZl a x y : dotr (a *: x) y = a * dotr x y.
Proof. by rewrite dotrC dotrZr dotrC. Qed.

Lemma dotr0 x : dotr x 0 = 0.
Proof. by rewrite /dotr big1 // => i _; rewrite mxE mulr0. Qed.

Lemma dot0r x : dotr 0 x = 0.
Proof. by rewrite dotrC dotr0. Qed.

Lemma sqnormB x y : sqnorm (x - y) = sqnorm x - 2%:R * dotr x y + sqnorm y.
Proof.
rewrite /sqnorm dotrBr (dotrC (x - y) x) (dotrC (x - y) y) !dotrBr (dotrC y x).
ring.
Qed.

End Dot.

Lemma dotr_row_mx (R : comRingType) m n (a c : 'rV[R]_m) (b d : 'rV[R]_n) :
  dotr (row_mx a b) (row_mx c d) = dotr a c + dotr b d.
Proof.
by rewrite /dotr big_split_ord /=; congr (_ + _); apply: eq_bigr => i _;
  rewrite ?row_mxEl ?row_mxEr.
Qed.

Lemma dotr_const1 (R : comRingType) (a c : R) :
  dotr (const_mx a : 'rV[R]_1) (const_mx c) = a * c.
Proof. by rewrite /dotr big_ord1 !mxE. Qed.

(** ** Lemma 2: the score is a Gaussian bump centred on [Delta] *)

Section Lemma2.
Variables (R : comRingType) (D : nat).

Theorem lemma2 (alpha : R) (Delta delta : 'rV[R]_D) :
  dotr (head_vec alpha Delta) (enc_quad delta) =
  - alpha * (sqnorm (delta - Delta) - sqnorm Delta).
Proof.
rewrite /head_vec /enc_quad dotrZl dotr_row_mx dotr_const1 dotrZl sqnormB.
rewrite (dotrC delta Delta); ring.
Qed.

(** The integer positions: [r_(k - q)] against [v^(h)] centres the bump on
    the target [q + Delta]. *)
Lemma posRB (p p' : pos D) : posR R (p - p') = posR R p - posR R p'.
Proof. by apply/rowP => i; rewrite !mxE mulrzBr. Qed.

Lemma posRN (p : pos D) : posR R (- p) = - posR R p.
Proof. by apply/rowP => i; rewrite !mxE mulrNz. Qed.

Lemma sqnorm0 : sqnorm (0 : 'rV[R]_D) = 0.
Proof. exact: dotr0. Qed.

Lemma posR0 : posR R (0 : pos D) = 0.
Proof. by apply/rowP => i; rewrite !mxE mulr0z. Qed.

Corollary lemma2_pos (alpha : R) (Delta k q : pos D) :
  dotr (head_vec alpha (posR R Delta)) (enc_quad (posR R (k - q))) =
  - alpha * sqnorm (posR R (k - (q + Delta))) + alpha * sqnorm (posR R Delta).
Proof.
rewrite lemma2 -posRB opprD addrA; ring.
Qed.

End Lemma2.

(** ** The quadratic term is needed

    With the linear encoding [r_delta = delta] no head vector [v] and
    constant [c] give [v . delta + c = - alpha |delta - Delta|^2] at every
    integer offset, unless [alpha = 0]: the paper's remark that the
    Gaussian score needs the quadratic entry of [r_delta]. *)

Section LinearFails.
Variables (R : numFieldType) (D : nat).

Lemma sqnorm_unit : sqnorm (delta_mx 0 0 : 'rV[R]_D.+1) = 1.
Proof.
rewrite /sqnorm /dotr (bigD1 0) //= big1 => [|i /negPf ne]; rewrite !mxE ?ne ?mulr0 //.
by rewrite eqxx mulr1 addr0.
Qed.

Theorem linear_encoding_fails (alpha c : R) (v Delta : 'rV[R]_D.+1)
    (Hfit : forall delta : pos D.+1,
       dotr v (posR R delta) + c = - alpha * sqnorm (posR R delta - Delta)) :
  alpha = 0.
Proof.
pose e : pos D.+1 := delta_mx 0 0.
have eE : posR R e = delta_mx 0 0.
  by apply/rowP => i; rewrite !mxE; case: (_ && _).
have h1 := Hfit e; have h2 := Hfit (- e); have h0 := Hfit 0.
rewrite posRN eE dotrNr in h2; rewrite eE in h1; rewrite posR0 dotr0 add0r in h0.
rewrite !sqnormB in h1 h2 h0.
rewrite sqnormN dotrNl in h2; rewrite sqnorm0 dot0r in h0.
have E1 : (dotr v (delta_mx 0 0) + c) + (- dotr v (delta_mx 0 0) + c) - 2%:R * c = 0 by ring.
rewrite h1 h2 h0 sqnorm_unit in E1.
have : - alpha * 2%:R = 0 by rewrite -E1; ring.
by move/eqP; rewrite mulf_eq0 pnatr_eq0 orbF oppr_eq0 => /eqP.
Qed.

End LinearFails.

(** ** Softmax ignores a constant *)

Section SoftmaxShift.
Variables (R : fieldType) (D : nat) (e : R -> R).
Variable eD : forall x y, e (x + y) = e x * e y.
Variable e_neq0 : forall x, e x != 0.
Variable keys : seq (pos D).

(** Extensionality: scores equal on the keys give equal softmax weights. *)
Lemma eq_softmax (s1 s2 : pos D -> R) :
  {in keys, s1 =1 s2} -> {in keys, softmax e keys s1 =1 softmax e keys s2}.
Proof.
move=> eq_s k k_in; rewrite /softmax eq_s //; congr (_ / _).
by rewrite big_seq_cond [RHS]big_seq_cond; apply: eq_bigr => k' /andP[/eq_s->].
Qed.

Theorem softmax_shift (s : pos D -> R) (c : R) :
  softmax e keys (fun k => s k + c) =1 softmax e keys s.
Proof.
move=> k; rewrite /softmax eD.
under eq_bigr do rewrite eD.
rewrite -mulr_suml invfM mulrACA divff ?mulr1 //.
Qed.

(** Lemma 2 as the paper uses it: the weights of the quadratic head centred
    on [Delta] are the softmax of [- alpha |k - (q + Delta)|^2]. *)
Theorem lemma2_softmax (alpha : R) (Delta q : pos D) :
  softmax e keys (fun k => dotr (head_vec alpha (posR R Delta)) (enc_quad (posR R (k - q))))
  =1 softmax e keys (fun k => - alpha * sqnorm (posR R (k - (q + Delta)))).
Proof.
move=> k; rewrite -[RHS](softmax_shift _ (alpha * sqnorm (posR R Delta))).
by rewrite /softmax lemma2_pos; under eq_bigr do rewrite lemma2_pos.
Qed.

End SoftmaxShift.

(** ** The generalised quadratic encoding (appendix), in 2-D *)

Section Anisotropic.
Variable R : numFieldType.

(** [r_delta = (delta_1, delta_2, delta_1^2, delta_2^2, delta_1 delta_2)]. *)
Definition enc_aniso (delta : 'rV[R]_2) : 'rV[R]_5 :=
  let d1 := delta 0 0 in let d2 := delta 0 1 in
  \row_i [:: d1; d2; d1 ^+ 2; d2 ^+ 2; d1 * d2]`_i.

(** The head vector read off [Lambda = Sigma^-1] and the centre [Delta]:
    [((Lambda Delta)_1, (Lambda Delta)_2, - Lambda_11 / 2, - Lambda_22 / 2,
      - Lambda_12)]. *)
Definition head_vec_aniso (Lambda : 'M[R]_2) (Delta : 'rV[R]_2) : 'rV[R]_5 :=
  let l := Delta *m Lambda in
  \row_i [:: l 0 0; l 0 1; - Lambda 0 0 / 2%:R; - Lambda 1 1 / 2%:R;
             - Lambda 0 1]`_i.

(** The quadratic form [x Lambda x^T]. *)
Definition qform n (Lambda : 'M[R]_n) (x : 'rV[R]_n) : R := (x *m Lambda *m x^T) 0 0.

Theorem lemma2_aniso (Lambda : 'M[R]_2) (Delta delta : 'rV[R]_2)
    (Hsym : Lambda^T = Lambda) :
  dotr (head_vec_aniso Lambda Delta) (enc_aniso delta) =
  - (qform Lambda (delta - Delta)) / 2%:R + qform Lambda Delta / 2%:R.
Proof.
have l10 : Lambda 1 0 = Lambda 0 1 by rewrite -[in LHS]Hsym mxE.
rewrite /dotr /qform /head_vec_aniso /enc_aniso !big_ord_recr big_ord0 /=.
rewrite !(mxE, big_ord_recr, big_ord0) /= ?(mxE, big_ord_recr, big_ord0) /=.
have w0 : widen_ord (leqnSn 1) ord_max = 0 :> 'I_2 by apply/val_inj.
have m1 : ord_max = 1 :> 'I_2 by apply/val_inj.
rewrite ?w0 ?m1 l10.
by field.
Qed.

End Anisotropic.
