(** * Lemma 1: heads as shifts

    The paper's Lemma 1 (Section 3.1): with one head per shift (a
    bijection), every head attending with probability one to a single key,
    and [W_val^(h) W_out^(h) = W_(Delta_h)], [b_out = b], the multi-head
    self-attention layer is the convolution, for every image.

    Convention: head [h] looks at [q + Delta_h] ([delta = k - q]); the
    paper writes [f(h) = q - k = - Delta_h].  The statements hold over any
    ring, for any number of spatial axes [D], any kernel index type (any
    kernel box, with per-axis sizes and dilations) and any channel counts;
    the existence of the value/output matrices holds over any field as soon
    as [d_head >= rank W_Delta] for every shift (so [d_head >= d_out]
    suffices, the paper's condition).  No axiom is used. *)

From mathcomp Require Import all_ssreflect all_algebra.
From AttnExpressivity Require Import Layers.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Local Open Scope ring_scope.

(** ** The layer as a sum over heads *)

Section Heads.
Variables (R : ringType) (D din dout dh nh : nat) (keys : seq (pos D)).

(** [W_out^(h)], the row block of [W_out] that multiplies head [h]. *)
Definition out_block (w_out : 'M[R]_(\sum_(h < nh) dh, dout)) (h : 'I_nh) :
  'M[R]_(dh, dout) := submxcol w_out h.

(** The paper's first step: [MHSA(X)_q = b_out + sum_h (A^(h) X)_q W_val^(h) W_out^(h)]. *)
Lemma mhsa_att_sum att w_val w_out b_out (X : image R D din) q :
  mhsa_att keys att w_val w_out b_out X q =
  \sum_(h < nh) (\sum_(k <- keys) att h q k *: X k) *m w_val h *m out_block w_out h
  + b_out.
Proof.
rewrite /mhsa_att -[w_out in LHS]submxcolK mul_mxrow_mxcol.
by congr (_ + _); apply: eq_bigr => h _; rewrite mulmxA.
Qed.

(** The out blocks of a stacked matrix are its blocks. *)
Lemma out_block_mxcol (B : 'I_nh -> 'M[R]_(dh, dout)) h :
  out_block (\mxcol_h B h) h = B h.
Proof. exact: mxcolK. Qed.

End Heads.

(** ** One-hot attention picks one pixel *)

Section OneHot.
Variables (R : ringType) (D n : nat) (keys : seq (pos D)).
Variable keys_uniq : uniq keys.

Lemma sum_onehot (t : pos D) (Y : pos D -> 'rV[R]_n) :
  t \in keys -> \sum_(k <- keys) (k == t)%:R *: Y k = Y t.
Proof.
move=> t_in; rewrite (bigD1_seq t) //= eqxx scale1r big1 ?addr0 // => k.
by move/negPf->; rewrite scale0r.
Qed.

End OneHot.

(** ** Lemma 1 *)

Section Lemma1.
Variables (R : ringType) (D din dout dh nh : nat).

(** Kernel indices [K] at shifts [offset], one head per kernel index. *)
Variables (K : finType) (offset : K -> pos D) (kernel_of_head : 'I_nh -> K).
Variable Hbij : bijective kernel_of_head.

(** The convolution's kernel slices and bias. *)
Variables (W : K -> 'M[R]_(din, dout)) (b : 'rV[R]_dout).

(** The keys: any finite set of positions, without repetition. *)
Variables (keys : seq (pos D)) (Hkeys : uniq keys).

(** [Delta_h], the shift head [h] looks at. *)
Definition shift_of_head (h : 'I_nh) : pos D := offset (kernel_of_head h).

(** With distinct offsets ([Boxes.kernel_offset_inj] for a kernel box) one
    head per kernel index is one head per shift: [shift_of_head] is a
    bijection from the heads onto the shift set. *)
Lemma shift_of_head_inj : injective offset -> injective shift_of_head.
Proof. by move=> off_inj; apply: inj_comp off_inj (bij_inj Hbij). Qed.

(** The convolution as a sum over heads. *)
Lemma conv_heads (X : image R D din) q :
  conv offset W b X q =
  \sum_(h < nh) X (q + shift_of_head h) *m W (kernel_of_head h) + b.
Proof.
by rewrite /conv (reindex kernel_of_head) //; apply: onW_bij.
Qed.

Theorem lemma1 (att : 'I_nh -> pos D -> pos D -> R)
    (w_val : 'I_nh -> 'M[R]_(din, dh)) (w_out : 'M[R]_(\sum_(h < nh) dh, dout))
    (X : image R D din) (q : pos D)
    (HW : forall h, w_val h *m out_block w_out h = W (kernel_of_head h))
    (Htarget : forall h, q + shift_of_head h \in keys)
    (Honehot : forall h k, k \in keys -> att h q k = (k == q + shift_of_head h)%:R) :
  mhsa_att keys att w_val w_out b X q = conv offset W b X q.
Proof.
rewrite mhsa_att_sum conv_heads; congr (_ + _); apply: eq_bigr => h _.
rewrite -mulmxA HW; congr (_ *m _).
rewrite -(sum_onehot Hkeys X (Htarget h)).
by rewrite big_seq_cond [RHS]big_seq_cond; apply: eq_bigr => k /andP[/Honehot->].
Qed.

End Lemma1.

(** ** Value and output matrices exist when [d_head >= rank W_Delta] *)

Section Factor.
Variables (F : fieldType) (m n dh : nat).

(** A rank factorisation [A = val_factor A *m out_factor A] through [dh]
    dimensions, from the echelon bases: [A = C pid_mx(rank A) R]. *)
Definition val_factor (A : 'M[F]_(m, n)) : 'M[F]_(m, dh) :=
  col_ebase A *m pid_mx (\rank A).
Definition out_factor (A : 'M[F]_(m, n)) : 'M[F]_(dh, n) :=
  pid_mx (\rank A) *m row_ebase A.

Lemma val_out_factorK (A : 'M[F]_(m, n)) :
  (\rank A <= dh)%N -> val_factor A *m out_factor A = A.
Proof.
move=> rk; rewrite /val_factor /out_factor -mulmxA (mulmxA (pid_mx _)).
by rewrite mul_pid_mx minnn (minn_idPr rk) mulmxA mulmx_ebase.
Qed.

(** And conversely: a product through [dh] dimensions has rank at most [dh]
    (the paper's remark on [D_h < D_out]). *)
Lemma rank_val_out (V : 'M[F]_(m, dh)) (O : 'M[F]_(dh, n)) :
  (\rank (V *m O) <= dh)%N.
Proof. exact: leq_trans (mxrankM_maxr V O) (rank_leq_row O). Qed.

End Factor.

Section Lemma1Weights.
Variables (F : fieldType) (din dout dh nh : nat).
Variables (K : finType) (kernel_of_head : 'I_nh -> K).
Variable (W : K -> 'M[F]_(din, dout)).

(** Every head's product [W_val^(h) W_out^(h)] can be made [W_(Delta_h)] as
    soon as [dh] is at least the rank of every kernel slice. *)
Theorem lemma1_weights (Hrank : forall i, (\rank (W i) <= dh)%N) :
  exists (w_val : 'I_nh -> 'M[F]_(din, dh))
         (w_out : 'M[F]_(\sum_(h < nh) dh, dout)),
    forall h, w_val h *m out_block w_out h = W (kernel_of_head h).
Proof.
exists (fun h => val_factor dh (W (kernel_of_head h))).
exists (\mxcol_h out_factor dh (W (kernel_of_head h))) => h.
by rewrite out_block_mxcol val_out_factorK.
Qed.

(** The paper's condition [d_head >= d_out] is a special case. *)
Corollary lemma1_weights_dout (Hdh : (dout <= dh)%N) :
  exists (w_val : 'I_nh -> 'M[F]_(din, dh))
         (w_out : 'M[F]_(\sum_(h < nh) dh, dout)),
    forall h, w_val h *m out_block w_out h = W (kernel_of_head h).
Proof. by apply: lemma1_weights => i; apply: leq_trans (rank_leq_col _) Hdh. Qed.

End Lemma1Weights.
