{#-
    The standard normal CDF Φ(z) = erfc(−z / √2) / 2 as a SQL expression (Postgres has none).

    erfc is W. J. Cody's rational Chebyshev approximation (Math. Comp. 1969; netlib specfun
    CALERF), accurate to about 1e-16 in double precision, on three intervals of y = |t|:
    [0, 0.46875]: erf(t) = t·A(y²)/B(y²); (0.46875, 4]: erfc(y) = e^(−y²)·C(y)/D(y);
    (4, 26.543): erfc(y) = e^(−y²)/y·(1/√π − P(1/y²)/(y²·Q(1/y²))); from 26.543 on erfc(y)
    is 0 in double precision (Cody's XBIG), which also keeps Postgres' exp() and * from
    raising underflow errors. erfc(−y) = 2 − erfc(y). e^(−y²) is split as
    e^(−u²)·e^(−(y−u)(y+u)) with u = trunc(16y)/16, as Cody does, to keep full accuracy.
    The argument is evaluated once (a scalar subquery), so any expression may be passed;
    null in, null out. tests/test_normal_cdf.py checks it against scipy.stats.norm.cdf.
-#}
{% macro normal_cdf(z) -%}
(
    select
        case
            when cody.t is null then null
            when cody.y <= 0.46875
                then 0.5 * (
                    1.0 - cody.t
                    * ((((0.185777706184603153 * cody.ysq + 3.16112374387056560) * cody.ysq
                        + 113.864154151050156) * cody.ysq + 377.485237685302021) * cody.ysq
                        + 3209.37758913846947)
                    / ((((cody.ysq + 23.6012909523441209) * cody.ysq + 244.024637934444173) * cody.ysq
                        + 1282.61652607737228) * cody.ysq + 2844.23683343917062)
                )
            when cody.y >= 26.543
                then case when cody.t > 0 then 0.0 else 1.0 end::double precision
            else 0.5 * (
                case when cody.t < 0 then 2.0 else 0.0 end
                + sign(cody.t)
                * exp(-cody.u * cody.u) * exp(-(cody.y - cody.u) * (cody.y + cody.u))
                * case
                    when cody.y <= 4.0
                        then ((((((((2.15311535474403846e-8 * cody.y + 0.564188496988670089) * cody.y
                            + 8.88314979438837594) * cody.y + 66.1191906371416295) * cody.y
                            + 298.635138197400131) * cody.y + 881.952221241769090) * cody.y
                            + 1712.04761263407058) * cody.y + 2051.07837782607147) * cody.y
                            + 1230.33935479799725)
                        / ((((((((cody.y + 15.7449261107098347) * cody.y + 117.693950891312499) * cody.y
                            + 537.181101862009858) * cody.y + 1621.38957456669019) * cody.y
                            + 3290.79923573345963) * cody.y + 4362.61909014324716) * cody.y
                            + 3439.36767414372164) * cody.y + 1230.33935480374942)
                    else (
                        0.56418958354775628695
                        - cody.inv_ysq
                        * (((((0.0163153871373020978 * cody.inv_ysq + 0.305326634961232344) * cody.inv_ysq
                            + 0.360344899949804439) * cody.inv_ysq + 0.125781726111229246) * cody.inv_ysq
                            + 0.0160837851487422766) * cody.inv_ysq + 6.58749161529837803e-4)
                        / (((((cody.inv_ysq + 2.56852019228982242) * cody.inv_ysq + 1.87295284992346047)
                            * cody.inv_ysq + 0.527905102951428412) * cody.inv_ysq + 0.0605183413124413191)
                            * cody.inv_ysq + 0.00233520497626869185)
                    ) / cody.y
                end
            )
        end
    from (
        select
            cdf_input.t,
            abs(cdf_input.t) as y,
            -- y² only where it cannot underflow (Cody's XSMALL); erf(t) = 2t/√π below it
            case when abs(cdf_input.t) > 1.11e-16 then cdf_input.t * cdf_input.t else 0.0 end as ysq,
            case when abs(cdf_input.t) > 4.0 then 1.0 / (cdf_input.t * cdf_input.t) end as inv_ysq,
            trunc(abs(cdf_input.t) * 16.0) / 16.0 as u
        from (select -({{ z }})::double precision / sqrt(2.0::double precision) as t) as cdf_input
    ) as cody
)
{%- endmacro %}
