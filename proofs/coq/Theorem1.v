(** * Theorem 1: the quadratic-encoding layer expresses the convolution

    The paper's Theorem 1 (Section 3): one head per shift, Lemma 2's
    quadratic encoding and head vectors, no content terms, and value/output
    matrices with [W_val^(h) W_out^(h) = W_(Delta_h)], [b_out = b]: the layer
    [MHSA_alpha] is the convolution up to the softmax leak, and converges to
    it as [alpha -> +oo].

    - [theorem1_bound]: for every query whose targets [q + Delta_h] are keys,
      and every output channel [j],
      [|MHSA_alpha(X)_q - Conv(X)_q|_j <= 2 leak(alpha, D) sum_h max_k |X_k W_(Delta_h)|_j],
      the a-priori bound of the Python [verify] (whose [leak] is
      [bounds.leak_bound]); it does not depend on the image;
    - [theorem1_zero_pad]: the same for every query of a zero-padded image,
      the keys being the positions of the padded image;
    - [theorem1_limit], [theorem1_zero_pad_limit]: [MHSA_alpha(X)_q -> Conv(X)_q]
      as [alpha -> +oo];
    - [theorem1]: for every kernel box (any [D], sizes, dilations) and every
      convolution with [d_head >= rank W_Delta] there are value and output
      matrices for which all of the above holds, with [prod_a K_a] heads.

    Over an abstract [realType]; CoqReals.v instantiates it at Coq's reals. *)

From mathcomp Require Import all_ssreflect all_algebra ring.
From mathcomp Require Import boolp classical_sets reals exp.
From mathcomp Require Import topology normedtype sequences.
From AttnExpressivity Require Import Layers Boxes Lemma1 Lemma2 Concentration.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Import numFieldNormedType.Exports.
Local Open Scope classical_set_scope.
Local Open Scope ring_scope.

(** ** One head: the error of an averaging against its target *)

Section HeadError.
Variables (R : realType) (T : eqType).

Lemma le_bigmax_seq (s : seq T) (F : T -> R) x :
  x \in s -> F x <= \big[Num.max/0]_(k <- s) F k.
Proof.
elim: s => // y s IH; rewrite in_cons big_cons le_maxr => /orP[/eqP->|/IH->].
  by rewrite lexx.
by rewrite orbT.
Qed.

Lemma bigmax_ge0 (s : seq T) (F : T -> R) : 0 <= \big[Num.max/0]_(k <- s) F k.
Proof. by elim: s => [|y s IH]; rewrite ?big_nil // big_cons le_maxr IH orbT. Qed.

(** If [p] is a probability on [keys] and [t] a key, the average of [y]
    differs from [y t] by at most [2 (1 - p t) max_k |y k|]. *)
Lemma head_error (keys : seq T) (p y : T -> R) (t : T) :
  uniq keys -> t \in keys -> (forall k, k \in keys -> 0 <= p k) ->
  \sum_(k <- keys) p k = 1 ->
  `|\sum_(k <- keys) p k * y k - y t| <= 2%:R * (1 - p t) * \big[Num.max/0]_(k <- keys) `|y k|.
Proof.
move=> k_uniq t_in p_ge0 p_sum1; set M := \big[Num.max/0]_(k <- keys) `|y k|.
have yM k : k \in keys -> `|y k| <= M by move=> k_in; apply: le_bigmax_seq.
have -> : y t = \sum_(k <- keys) p k * y t by rewrite -mulr_suml p_sum1 mul1r.
rewrite -sumrB (bigD1_seq t) //= subrr add0r big_seq_cond.
apply: le_trans (ler_norm_sum _ _ _) _.
apply: le_trans (_ : \sum_(k <- keys | (k \in keys) && (k != t)) p k * (2%:R * M) <= _).
  apply: ler_sum => k /andP[k_in _]; rewrite -mulrBr normrM ger0_norm ?p_ge0 //.
  rewrite ler_wpmul2l ?p_ge0 // mulr2n mulrDl !mul1r.
  by apply: le_trans (ler_norm_sub _ _) _; rewrite ler_add ?yM.
rewrite -mulr_suml -big_seq_cond.
have -> : \sum_(k <- keys | k != t) p k = 1 - p t.
  by move: p_sum1; rewrite (bigD1_seq t) //= => <-; rewrite addrAC subrr add0r.
by rewrite mulrA (mulrC _ 2%:R).
Qed.

End HeadError.

(** ** The construction's weights *)

Section Construction.
Variables (R : realType) (D din dout dh nh : nat).
Variables (K : finType) (offset : K -> pos D) (kernel_of_head : 'I_nh -> K).
Variables (w_val : 'I_nh -> 'M[R]_(din, dh)) (w_out : 'M[R]_(\sum_(h < nh) dh, dout)).
Variable b : 'rV[R]_dout.

(** Lemma 2's encoding of an integer offset: [r_delta = (|delta|^2, delta)]. *)
Definition quad_enc (delta : pos D) : 'rV[R]_(1 + D) := enc_quad (posR R delta).

(** No content terms ([W_qry = W_key = 0], [u = 0]), [W_keyhat = I],
    [v^(h) = - alpha (1, - 2 Delta_h)], the given value/output matrices,
    [b_out = b]. *)
Definition construction (alpha : R) : mhsa_weights R din dout (1 + D) (1 + D) dh nh :=
  MhsaWeights (fun _ => 0) (fun _ => 0) (fun _ => 1%:M) (fun _ => 0)
    (fun h => head_vec alpha (posR R (shift_of_head offset kernel_of_head h)))
    w_val w_out b.

(** [MHSA_alpha]: the layer with the construction's weights, softmax over [keys]. *)
Definition layer (alpha : R) (keys : seq (pos D)) (X : image R D din) (q : pos D) :
    'rV[R]_dout :=
  mhsa expR keys (construction alpha) quad_enc X q.

Lemma construction_score alpha X h q k :
  score (construction alpha) quad_enc X h q k =
  dotr (head_vec alpha (posR R (shift_of_head offset kernel_of_head h))) (quad_enc (k - q)).
Proof. by rewrite /score /= !mulmx0 mulmx1 !dotr0 dot0r !add0r. Qed.

(** Each head's weights are the softmax of [- alpha |k - (q + Delta_h)|^2]. *)
Lemma layer_weights alpha keys X h q :
  {in keys, softmax expR keys (score (construction alpha) quad_enc X h q)
    =1 gauss_softmax alpha keys (q + shift_of_head offset kernel_of_head h)}.
Proof.
move=> k k_in; rewrite (@eq_softmax _ _ _ _ _ (fun k => dotr (head_vec alpha
  (posR R (shift_of_head offset kernel_of_head h))) (quad_enc (k - q)))) //.
  rewrite /gauss_softmax /quad_enc; apply: lemma2_softmax.
    by move=> x y; rewrite expRD.
  by move=> x; rewrite gt_eqF ?expR_gt0.
by move=> k' _; rewrite construction_score.
Qed.

End Construction.

Arguments quad_enc {R D} delta.

(** ** Theorem 1, quantitative *)

Section Theorem1.
Variables (R : realType) (D din dout dh nh : nat).
Variables (K : finType) (offset : K -> pos D) (kernel_of_head : 'I_nh -> K).
Variable Hbij : bijective kernel_of_head.
Variables (W : K -> 'M[R]_(din, dout)) (b : 'rV[R]_dout).
Variables (w_val : 'I_nh -> 'M[R]_(din, dh)) (w_out : 'M[R]_(\sum_(h < nh) dh, dout)).
Variable HW : forall h, w_val h *m out_block w_out h = W (kernel_of_head h).

(** The data factor of channel [j]: [sum_h max_(k in keys) |X_k W_(Delta_h)|_j]. *)
Definition data_factor (keys : seq (pos D)) (X : image R D din) (j : 'I_dout) : R :=
  \sum_(h < nh) \big[Num.max/0]_(k <- keys) `|(X k *m W (kernel_of_head h)) 0 j|.

Lemma data_factor_ge0 keys X j : 0 <= data_factor keys X j.
Proof. by apply: sumr_ge0 => h _; apply: bigmax_ge0. Qed.

Theorem theorem1_bound (alpha : R) (keys : seq (pos D)) (X : image R D din)
    (q : pos D) (j : 'I_dout)
    (Halpha : 0 < alpha) (Hkeys : uniq keys)
    (Htarget : forall h, q + shift_of_head offset kernel_of_head h \in keys) :
  `|layer offset kernel_of_head w_val w_out b alpha keys X q 0 j
    - conv offset W b X q 0 j|
  <= 2%:R * leak alpha D * data_factor keys X j.
Proof.
set Delta := shift_of_head offset kernel_of_head.
rewrite /layer /mhsa mhsa_att_sum (conv_heads offset Hbij) /=.
have entryB (M1 M2 : 'rV[R]_dout) : M1 0 j - M2 0 j = (M1 - M2) 0 j by rewrite !mxE.
rewrite entryB opprD addrACA subrr addr0 -sumrB summxE /data_factor mulr_sumr.
apply: le_trans (ler_norm_sum _ _ _) _; apply: ler_sum => h _.
set P := construction offset kernel_of_head w_val w_out b alpha.
set p := softmax expR keys (score P quad_enc X h q).
set y := fun k => (X k *m W (kernel_of_head h)) 0 j.
have -> : ((\sum_(k <- keys) p k *: X k) *m w_val h *m out_block w_out h
           - X (q + Delta h) *m W (kernel_of_head h)) 0 j
          = \sum_(k <- keys) p k * y k - y (q + Delta h).
  rewrite -mulmxA HW mulmx_suml -entryB summxE; congr (_ - _).
  by apply: eq_bigr => k _; rewrite -scalemxAl mxE.
have pE : {in keys, p =1 gauss_softmax alpha keys (q + Delta h)} := layer_weights _ _ _ _ _ _ _ _ _.
have p_ge0 k : k \in keys -> 0 <= p k.
  by move=> _; rewrite /p /softmax divr_ge0 ?sumr_ge0 // => *; apply/ltW/expR_gt0.
have p_sum1 : \sum_(k <- keys) p k = 1.
  rewrite /p /softmax -mulr_suml mulfV // gt_eqF //.
  rewrite (bigD1_seq _ (Htarget h)) //= ltr_paddr ?sumr_ge0 ?expR_gt0 // => k _.
  exact/ltW/expR_gt0.
apply: le_trans (head_error y Hkeys (Htarget h) p_ge0 p_sum1) _.
rewrite ler_wpmul2r ?bigmax_ge0 // ler_wpmul2l ?ler0n // pE ?Htarget //.
exact: concentration_target.
Qed.

(** As [alpha -> +oo] each channel of the layer's output tends to the
    convolution's. *)
Theorem theorem1_limit (keys : seq (pos D)) (X : image R D din) (q : pos D) (j : 'I_dout)
    (Hkeys : uniq keys)
    (Htarget : forall h, q + shift_of_head offset kernel_of_head h \in keys) :
  (fun alpha => layer offset kernel_of_head w_val w_out b alpha keys X q 0 j)
    @ +oo --> conv offset W b X q 0 j.
Proof.
apply/cvgrPdist_le => eps eps_gt0; set S := data_factor keys X j.
have S_ge0 : 0 <= S := data_factor_ge0 keys X j.
have S1 : 0 < 2%:R * S + 1 := ltr_paddl (mulr_ge0 (ler0n _ 2) S_ge0) ltr01.
have [A [A_ge0 leA]] := leak_small D (divr_gt0 eps_gt0 S1).
exists A; split; first exact: num_real.
move=> alpha A_alpha; have a_gt0 : 0 < alpha := le_lt_trans A_ge0 A_alpha.
rewrite distrC; apply: le_trans (theorem1_bound X j a_gt0 Hkeys Htarget) _.
apply: le_trans (_ : 2%:R * (eps / (2%:R * S + 1)) * S <= _).
  by rewrite ler_wpmul2r // ler_wpmul2l ?ler0n ?leA.
have -> : 2%:R * (eps / (2%:R * S + 1)) * S = eps * (2%:R * S) / (2%:R * S + 1).
  by ring.
by rewrite ler_pdivr_mulr // ler_pmul2l // ler_addl ler01.
Qed.

End Theorem1.

(** ** Zero-padded images and kernel boxes *)

Section ZeroPadded.
Variables (R : realType) (D din dout dh nh : nat) (ks ds : 'I_D -> nat).
Variables (kernel_of_head : 'I_nh -> kidx ks) (Hbij : bijective kernel_of_head).
Variables (W : kidx ks -> 'M[R]_(din, dout)) (b : 'rV[R]_dout).
Variables (w_val : 'I_nh -> 'M[R]_(din, dh)) (w_out : 'M[R]_(\sum_(h < nh) dh, dout)).
Variable HW : forall h, w_val h *m out_block w_out h = W (kernel_of_head h).

(** The image box [[lo, hi]] and the keys: the positions of the padded image. *)
Variables lo hi : pos D.
Definition padded_keys : seq (pos D) :=
  box_enum (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds).

Lemma padded_targets q h : in_box lo hi q ->
  q + shift_of_head (kernel_offset ks ds) kernel_of_head h \in padded_keys.
Proof. by move=> q_in; rewrite mem_box_enum target_in_padded. Qed.

Theorem theorem1_zero_pad (alpha : R) (X : image R D din) (q : pos D) (j : 'I_dout)
    (Halpha : 0 < alpha) (Hq : in_box lo hi q) :
  `|layer (kernel_offset ks ds) kernel_of_head w_val w_out b alpha padded_keys
       (zero_pad lo hi X) q 0 j
    - conv (kernel_offset ks ds) W b (zero_pad lo hi X) q 0 j|
  <= 2%:R * leak alpha D * data_factor kernel_of_head W padded_keys (zero_pad lo hi X) j.
Proof.
apply: theorem1_bound => //; first exact: box_enum_uniq.
by move=> h; apply: padded_targets.
Qed.

Theorem theorem1_zero_pad_limit (X : image R D din) (q : pos D) (j : 'I_dout)
    (Hq : in_box lo hi q) :
  (fun alpha => layer (kernel_offset ks ds) kernel_of_head w_val w_out b alpha
                  padded_keys (zero_pad lo hi X) q 0 j)
    @ +oo --> conv (kernel_offset ks ds) W b (zero_pad lo hi X) q 0 j.
Proof.
apply: theorem1_limit => //; first exact: box_enum_uniq.
by move=> h; apply: padded_targets.
Qed.

End ZeroPadded.

(** ** Theorem 1: every convolution, with [prod_a K_a] heads *)

Section Express.
Variables (R : realType) (D din dout dh : nat) (ks ds : 'I_D -> nat).

(** One head per kernel index; heads and kernel indices are both finite
    types of [prod_a K_a] elements ([card_kidx]). *)
Definition head_kernel : 'I_#|kidx ks| -> kidx ks := enum_val.

Lemma head_kernel_bij : bijective head_kernel.
Proof. exact: enum_val_bij. Qed.

Theorem theorem1 (W : kidx ks -> 'M[R]_(din, dout)) (b : 'rV[R]_dout)
    (Hrank : forall i, (\rank (W i) <= dh)%N) :
  exists (w_val : 'I_#|kidx ks| -> 'M[R]_(din, dh))
         (w_out : 'M[R]_(\sum_(h < #|kidx ks|) dh, dout)),
  forall (lo hi : pos D) (X : image R D din) (q : pos D), in_box lo hi q ->
  forall j : 'I_dout,
    (forall alpha, 0 < alpha ->
      `|layer (kernel_offset ks ds) head_kernel w_val w_out b alpha
          (padded_keys ks ds lo hi) (zero_pad lo hi X) q 0 j
        - conv (kernel_offset ks ds) W b (zero_pad lo hi X) q 0 j|
      <= 2%:R * leak alpha D
              * data_factor head_kernel W (padded_keys ks ds lo hi) (zero_pad lo hi X) j)
    /\ (fun alpha => layer (kernel_offset ks ds) head_kernel w_val w_out b alpha
                      (padded_keys ks ds lo hi) (zero_pad lo hi X) q 0 j)
         @ +oo --> conv (kernel_offset ks ds) W b (zero_pad lo hi X) q 0 j.
Proof.
have [w_val [w_out HW]] := lemma1_weights head_kernel Hrank.
exists w_val, w_out => lo hi X q Hq j; split.
  by move=> alpha a_gt0; apply: theorem1_zero_pad => //; apply: head_kernel_bij.
by apply: theorem1_zero_pad_limit => //; apply: head_kernel_bij.
Qed.

End Express.
