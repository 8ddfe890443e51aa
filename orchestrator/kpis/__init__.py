"""KPIs computed by the database: message figures per group (`report`, `queries`),
customer-level figures (`customers`), holdout lift (`lift`) and journey funnels
(`funnel`); the arithmetic and its None-for-undefined rule live in `formulas`."""
