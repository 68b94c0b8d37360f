(** * Layers: the objects of the paper, in the project's conventions

    Cordonnier, Loukas & Jaggi, "On the Relationship between Self-Attention
    and Convolutional Layers" (ICLR 2020), Sections 2 and 3.

    - a position is a point of [Z^D], a row vector of integers;
    - an image is a map from positions to row vectors of [din] channels;
      zero padding is "zero outside the image box" ([zero_pad]);
    - the convolution (deep-learning sense, cross-correlation) sums
      [X (q + offset i) *m W i] over the kernel indices [i];
    - the shift set of a kernel box with per-axis sizes [ks] and dilations
      [ds] puts kernel index [i] at [i * d - floor (d (K - 1) / 2)] along
      each axis (PyTorch's "same" for even [K]);
    - the multi-head self-attention has the four-term relative score, a
      softmax over a finite key set, value matrices, and an output matrix
      applied to the concatenation of the heads;
    - relative offsets are [delta = k - q] (key minus query): head [h]
      looks at [q + Delta_h].

    Nothing here uses an axiom: the definitions are over any ring (or any
    field with an exponential, for the softmax). *)

From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Local Open Scope ring_scope.

(** ** Positions, vectors, encodings *)

(** A position (pixel, token) of a [D]-dimensional image. *)
Notation pos D := 'rV[int]_D.

Section Vectors.
Variable R : ringType.

(** The real (ring) point of an integer position. *)
Definition posR D (p : pos D) : 'rV[R]_D := map_mx (fun z : int => z%:~R) p.

(** Dot product and squared Euclidean norm of row vectors. *)
Definition dotr n (x y : 'rV[R]_n) : R := \sum_(i < n) x 0 i * y 0 i.
Definition sqnorm n (x : 'rV[R]_n) : R := dotr x x.

(** Lemma 2's quadratic relative encoding [r_delta = (|delta|^2, delta)],
    of dimension [1 + D]. *)
Definition enc_quad D (delta : 'rV[R]_D) : 'rV[R]_(1 + D) :=
  row_mx (const_mx (sqnorm delta)) delta.

(** Lemma 2's head vector [v = - alpha (1, - 2 Delta)]. *)
Definition head_vec D (alpha : R) (Delta : 'rV[R]_D) : 'rV[R]_(1 + D) :=
  - alpha *: row_mx (const_mx 1) (- 2%:R *: Delta).

End Vectors.

(** ** Images, boxes, zero padding *)

Section Images.
Variables (R : ringType) (D : nat).

(** An image with [n] channels: a row vector at every position of [Z^D]. *)
Definition image n := pos D -> 'rV[R]_n.

(** The box [lo <= p <= hi], coordinate by coordinate. *)
Definition in_box (lo hi : pos D) (p : pos D) : bool :=
  [forall a, (lo 0 a <= p 0 a <= hi 0 a)%R].

(** Zero padding: the image [X] read on the box [[lo, hi]], zero outside. *)
Definition zero_pad n (lo hi : pos D) (X : image n) : image n :=
  fun p => if in_box lo hi p then X p else 0.

End Images.

(** An enumeration without repetition of the positions of a box. *)
Section BoxEnum.
Variable D : nat.

Definition box_side (lo hi : pos D) : nat :=
  (\max_(a < D) absz (hi 0 a - lo 0 a)%R).+1.

Definition box_enum (lo hi : pos D) : seq (pos D) :=
  [seq p <- [seq lo + \row_a (f a : nat)%:Z | f : {ffun 'I_D -> 'I_(box_side lo hi)}]
     | in_box lo hi p].

End BoxEnum.

(** ** The convolution *)

Section Convolution.
Variables (R : ringType) (D din dout : nat).

(** Kernel indices [K] (any finite type) sit at the shifts [offset i];
    [W i] is the kernel slice of index [i], [b] the bias. *)
Variables (K : finType) (offset : K -> pos D).

Definition conv (W : K -> 'M[R]_(din, dout)) (b : 'rV[R]_dout)
    (X : image R D din) (q : pos D) : 'rV[R]_dout :=
  \sum_(i : K) X (q + offset i) *m W i + b.

End Convolution.

(** ** The shift set of a kernel box *)

Section KernelBox.
Variables (D : nat) (ks ds : 'I_D -> nat).

(** Kernel indices of a box with [ks a] entries along axis [a]. *)
Definition kidx := {dffun forall a : 'I_D, 'I_(ks a)}.

(** Padding before and after, per axis: [floor (d (K - 1) / 2)] and the rest. *)
Definition pad_lo (a : 'I_D) : nat := (ds a * (ks a).-1)./2.
Definition pad_hi (a : 'I_D) : nat := ds a * (ks a).-1 - pad_lo a.

(** Kernel index [i] sits at [i_a * d_a - floor (d_a (K_a - 1) / 2)]. *)
Definition kernel_offset (i : kidx) : pos D :=
  \row_a ((i a * ds a)%:Z - (pad_lo a)%:Z).

Definition pad_lo_row : pos D := \row_a (pad_lo a)%:Z.
Definition pad_hi_row : pos D := \row_a (pad_hi a)%:Z.

End KernelBox.

Arguments kernel_offset {D} ks ds i.

(** ** Multi-head self-attention *)

Section Attention.
Variables (R : ringType) (D din dout dh nh : nat).
Variable keys : seq (pos D).

(** The layer, given each head's attention weights [att h q k]:
    [MHSA(X)_q = concat_h [ (sum_k att h q k X_k) W_val^(h) ] W_out + b_out]. *)
Definition mhsa_att (att : 'I_nh -> pos D -> pos D -> R)
    (w_val : 'I_nh -> 'M[R]_(din, dh)) (w_out : 'M[R]_(\sum_(h < nh) dh, dout))
    (b_out : 'rV[R]_dout) (X : image R D din) (q : pos D) : 'rV[R]_dout :=
  \mxrow_h ((\sum_(k <- keys) att h q k *: X k) *m w_val h) *m w_out + b_out.

End Attention.

Section Weights.
Variables (R : ringType) (din dout dk dp dh nh : nat).

(** The weights of the general layer, one block per head [h < nh]. *)
Record mhsa_weights := MhsaWeights {
  w_qry : 'I_nh -> 'M[R]_(din, dk);
  w_key : 'I_nh -> 'M[R]_(din, dk);
  w_keyhat : 'I_nh -> 'M[R]_(dp, dk);
  u_vec : 'I_nh -> 'rV[R]_dk;
  v_vec : 'I_nh -> 'rV[R]_dk;
  w_val : 'I_nh -> 'M[R]_(din, dh);
  w_out : 'M[R]_(\sum_(h < nh) dh, dout);
  b_out : 'rV[R]_dout }.

End Weights.

Section Score.
Variables (R : ringType) (D din dout dk dp dh nh : nat).
Variable P : mhsa_weights R din dout dk dp dh nh.
Variable enc : pos D -> 'rV[R]_dp.

(** The four-term relative score of head [h], query [q], key [k],
    [delta = k - q] (row-vector convention):
    content-content, content-position, global content, global position. *)
Definition score (X : image R D din) (h : 'I_nh) (q k : pos D) : R :=
  let xq := X q *m w_qry P h in
  let xk := X k *m w_key P h in
  let rk := enc (k - q) *m w_keyhat P h in
  dotr xq xk + dotr xq rk + dotr (u_vec P h) xk + dotr (v_vec P h) rk.

End Score.

Section Softmax.
Variables (R : fieldType) (D : nat).

(** Softmax over the finite key set [keys] with the exponential [e]
    (the paper's is [expR] on a real type, see Theorem1.v). *)
Definition softmax (e : R -> R) (keys : seq (pos D)) (s : pos D -> R)
    (k : pos D) : R :=
  e (s k) / \sum_(k' <- keys) e (s k').

Variables (din dout dk dp dh nh : nat).

(** The layer with softmax attention over [keys]. *)
Definition mhsa (e : R -> R) (keys : seq (pos D))
    (P : mhsa_weights R din dout dk dp dh nh) (enc : pos D -> 'rV[R]_dp)
    (X : image R D din) (q : pos D) : 'rV[R]_dout :=
  mhsa_att keys (fun h q => softmax e keys (score P enc X h q))
    (w_val P) (w_out P) (b_out P) X q.

End Softmax.
